// Capped exponential backoff with jitter: delay in [b/2, b], b = min(cap, base * 2^(n-1)).
#pragma once

#include <algorithm>
#include <chrono>
#include <random>

namespace fieldlink::core {

class Backoff {
public:
    Backoff(std::chrono::milliseconds base, std::chrono::milliseconds cap)
        : base_(std::max<long long>(base.count(), 1)), cap_(std::max<long long>(cap.count(), 1)),
          rng_(std::random_device{}()) {}

    std::chrono::milliseconds next(int failures) {
        long long b = base_;
        for (int i = 1; i < failures && b < cap_; ++i) b *= 2;
        b = std::min(b, cap_);
        std::uniform_int_distribution<long long> dist(b / 2, b);
        return std::chrono::milliseconds(dist(rng_));
    }

private:
    long long base_;
    long long cap_;
    std::mt19937_64 rng_;
};

}  // namespace fieldlink::core
