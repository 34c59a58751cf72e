// What a point accepts from the cloud: the checks every write passes on the north side, before
// anything reaches a device (writable, type, range, min/max), and the named commands of simple
// devices (`on: 1`). Encoding into registers is the bus side's (mapping/encode.hpp).
#pragma once

#include <optional>
#include <string>
#include <utility>

#include "config/config.hpp"
#include "core/value.hpp"

namespace fieldlink::config {

// The values a point can hold in engineering units: its type's raw range through scale and
// offset, within its min/max. Strings and bools have none (returned as {0, 0}).
std::pair<double, double> write_range(const PointConfig& p);

// A value from the platform (number, bool, or text such as "30.5", "true", or a command name of
// the point) converted to what the point takes: bool for bool points, a whole number for
// unscaled integer types, a double for scaled and floating types, text for strings. nullopt
// with `why` saying what was expected when the point is not writable or the value does not fit.
std::optional<core::Value> accept_write(const PointConfig& p, const core::Value& requested, std::string* why);

// The point of `d` defining command `name`, or nullptr.
const PointConfig* point_with_command(const DeviceConfig& d, const std::string& name);

// Text (a YAML scalar, a plain payload) as a value: true/false, a whole number, a decimal
// number, else the text itself.
core::Value value_from_text(const std::string& text);

std::string describe(const core::Value& v);

}  // namespace fieldlink::config
