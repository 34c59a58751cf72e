// What the local Modbus TCP server does with the bytes a client sends: framing (MBAP), and for
// each request the answer (registers or bits from the image, or an exception) or the write it
// asks for (checked as a cloud's write is, for the bus worker to do). No sockets here: the
// server's thread sends what this decides, and the fuzz target feeds it directly.
#pragma once

#include <cstdint>
#include <vector>

#include "config/config.hpp"
#include "core/write_job.hpp"
#include "serve/image.hpp"

namespace fieldlink::serve {

// The big-endian 16-bit word at `at` of a request's bytes (MBAP header included).
inline int word_at(const std::vector<std::uint8_t>& adu, std::size_t at) {
    return (adu[at] << 8) | adu[at + 1];
}

inline constexpr int kIllegalFunction = 1;
inline constexpr int kIllegalAddress = 2;
inline constexpr int kIllegalValue = 3;
inline constexpr int kDeviceFailure = 4;
inline constexpr int kTargetFailed = 11;

// The length of the next whole request at the front of a client's buffer: 0 while it is still
// incomplete, -1 when the stream is not Modbus TCP (protocol id not 0, length out of 2-254).
long next_request(const std::vector<std::uint8_t>& in);

struct Answer {
    int exception = 0;  // non-zero: answer with this exception code
    // A read (exception 0, no write): what to send back, for the area and range asked.
    config::Area area = config::Area::holding;
    int address = 0;
    int count = 0;
    ReadResult read;
    // A write (exception 0): the checked values, for the bus worker; the client waits for it.
    core::WriteJobPtr write;
};

// The answer to one request (`adu`: MBAP header, function code, data), at `now_ms`.
Answer answer_request(const config::Config& cfg, const Image& image, const Cache& cache,
                      const std::vector<std::uint8_t>& adu, std::int64_t now_ms);

// The exception a finished write gets, from how the bus worker says it failed (0: written).
int exception_of(const core::WriteJob& job);

}  // namespace fieldlink::serve
