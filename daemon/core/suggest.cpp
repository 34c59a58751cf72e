#include "suggest.hpp"

#include <algorithm>
#include <cctype>
#include <cstddef>

namespace fieldlink::core {
namespace {

char lower(char c) {
    return static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
}

std::string lowered(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(), lower);
    return out;
}

// Optimal string alignment distance: insertions, deletions, substitutions and swaps of two
// neighbouring letters, each costing one.
std::size_t distance(const std::string& a, const std::string& b) {
    const std::size_t n = a.size(), m = b.size();
    std::vector<std::vector<std::size_t>> d(n + 1, std::vector<std::size_t>(m + 1, 0));
    for (std::size_t i = 0; i <= n; ++i) d[i][0] = i;
    for (std::size_t j = 0; j <= m; ++j) d[0][j] = j;
    for (std::size_t i = 1; i <= n; ++i) {
        for (std::size_t j = 1; j <= m; ++j) {
            const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
        }
    }
    return d[n][m];
}

std::size_t limit_for(std::size_t length) {
    return std::clamp<std::size_t>((length - 1) / 3, 1, 3);
}

}  // namespace

std::string nearest(std::string_view given, const std::vector<std::string>& candidates) {
    if (given.empty() || given.size() > 64) return {};
    const std::string g = lowered(given);
    std::string best;
    std::size_t best_d = limit_for(g.size()) + 1;
    for (const auto& c : candidates) {
        const std::string l = lowered(c);
        if (l == g) return c;  // only the case differs
        const std::size_t d = distance(g, l);
        if (d < best_d) {
            best_d = d;
            best = c;
        }
    }
    if (!best.empty()) return best;
    for (const auto& c : candidates) {
        const std::string l = lowered(c);
        if (g.size() >= 4 && l.size() > g.size() && l.compare(0, g.size(), g) == 0) return c;
        if (l.size() >= 4 && g.size() > l.size() && g.compare(0, l.size(), l) == 0) return c;
    }
    return {};
}

std::string did_you_mean(std::string_view given, const std::vector<std::string>& candidates) {
    auto n = nearest(given, candidates);
    return n.empty() ? std::string() : " (did you mean '" + n + "'?)";
}

std::vector<std::string> words(std::string_view list) {
    std::vector<std::string> out;
    std::string cur;
    for (char c : list) {
        if (c == ',' || c == '|' || c == ' ') {
            if (!cur.empty()) out.push_back(cur);
            cur.clear();
        } else {
            cur += c;
        }
    }
    if (!cur.empty()) out.push_back(cur);
    return out;
}

}  // namespace fieldlink::core
