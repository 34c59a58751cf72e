// Sparkplug B payloads from a host (NCMD/DCMD bodies): decoded, every metric's value read as each
// datatype, and what decodes is encoded again and must decode to the same metrics. (To be
// extended to the DCMD handler once the sparkplug platform lands.)
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "platforms/sparkplug_payload.hpp"

namespace sp = fieldlink::platforms::sparkplug;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string bytes(reinterpret_cast<const char*>(data), size);
    std::string err;
    auto p = sp::decode(bytes, &err);
    if (!p) {
        if (err.empty()) std::abort();  // a refusal always says why
        return 0;
    }
    for (auto& m : p->metrics) {
        for (std::uint32_t t = 0; t <= 14; ++t) (void)sp::typed_value(m, static_cast<sp::DataType>(t));
        // Encode what was read with a datatype its value fits (the field it came in decides).
        if (!m.value) {
            m.datatype = sp::DataType::unknown;
            continue;
        }
        if (std::holds_alternative<std::uint64_t>(*m.value)) m.datatype = sp::DataType::uint64;
        if (std::holds_alternative<double>(*m.value)) m.datatype = sp::DataType::float64;
        if (std::holds_alternative<bool>(*m.value)) m.datatype = sp::DataType::boolean;
        if (std::holds_alternative<std::string>(*m.value)) m.datatype = sp::DataType::string;
        if (m.is_null) m.value.reset();
    }
    const auto again = sp::encode(*p, &err);
    if (!again) std::abort();  // every value fits the datatype chosen for it
    const auto back = sp::decode(*again, &err);
    if (!back || back->metrics.size() != p->metrics.size() || back->seq != p->seq) std::abort();
    for (std::size_t i = 0; i < p->metrics.size(); ++i) {
        const auto& a = p->metrics[i];
        const auto& b = back->metrics[i];
        if (a.name != b.name || a.alias != b.alias || a.historical != b.historical || a.is_null != b.is_null)
            std::abort();
        // (NaN never equals itself; a string with a NUL byte ends there in protobuf-c's C string)
        const bool comparable = !(a.value && std::holds_alternative<double>(*a.value) &&
                                  std::get<double>(*a.value) != std::get<double>(*a.value)) &&
                                !(a.value && std::holds_alternative<std::string>(*a.value) &&
                                  std::get<std::string>(*a.value).find('\0') != std::string::npos);
        if (comparable && a.value != b.value) std::abort();
    }
    return 0;
}
