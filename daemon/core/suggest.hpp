// "Did you mean": the nearest valid word to one that was not recognised, for config errors.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace fieldlink::core {

// The candidate closest to `given` (case-insensitive optimal-string-alignment distance, so a
// swapped pair of letters counts once), if it is close enough to be what was meant: at most one
// edit for short words, two from 7 letters, three from 10. Failing that, a candidate that starts
// with `given` (4 letters or more), or that `given` starts with. Empty when none is.
std::string nearest(std::string_view given, const std::vector<std::string>& candidates);

// " (did you mean 'x'?)" or "" : ready to append to an error message.
std::string did_you_mean(std::string_view given, const std::vector<std::string>& candidates);

// Splits "a, b, c" or "a|b|c" into words, for tables that keep their choices as one string.
std::vector<std::string> words(std::string_view list);

}  // namespace fieldlink::core
