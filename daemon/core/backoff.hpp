// Capped exponential backoff with jitter, b = min(cap, base * 2^(n-1)): "equal" jitter draws the
// delay from [b/2, b] (a device that does not answer is never probed at once); "full" jitter
// from [0, b] (spreads thousands of sessions reconnecting after a broker restart).
#pragma once

#include <algorithm>
#include <chrono>
#include <random>

namespace fieldlink::core {

class Backoff {
  public:
    enum class Jitter { equal, full };

    Backoff(std::chrono::milliseconds base, std::chrono::milliseconds cap, Jitter jitter = Jitter::equal)
        : base_(std::max<long long>(base.count(), 1)),
          cap_(std::max<long long>(cap.count(), 1)),
          jitter_(jitter),
          rng_(std::random_device{}()) {}

    std::chrono::milliseconds next(int failures) {
        long long b = base_;
        for (int i = 1; i < failures && b < cap_; ++i) b *= 2;
        b = std::min(b, cap_);
        std::uniform_int_distribution<long long> dist(jitter_ == Jitter::full ? 0 : b / 2, b);
        return std::chrono::milliseconds(dist(rng_));
    }

  private:
    long long base_;
    long long cap_;
    Jitter jitter_;
    std::mt19937_64 rng_;
};

}  // namespace fieldlink::core
