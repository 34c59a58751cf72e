// OneNET legacy "multi-protocol" MQTT (protocols.md §3): the $dp frame.
#pragma once

#include <cstdint>
#include <string>

namespace fieldlink::platforms {

// A $dp payload of type 1..5: the type byte, a 2-byte big-endian body length, the body.
std::string onenet_legacy_frame(std::uint8_t type, const std::string& body);

}  // namespace fieldlink::platforms
