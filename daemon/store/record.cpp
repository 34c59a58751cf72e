#include "record.hpp"

#include <cstring>
#include <type_traits>
#include <variant>

#include "store/varint.hpp"

namespace fieldlink::store {
namespace {

enum Tag : std::uint8_t { kFalse = 0, kTrue = 1, kInt = 2, kUint = 3, kDouble = 4, kString = 5 };

}  // namespace

std::string encode_record(const core::SampleBatch& b, const std::vector<std::uint32_t>& point_ids) {
    std::string out;
    out.reserve(b.values.size() * 11);  // point id, tag, 8-byte double: rarely more
    for (const auto& pv : b.values) {
        put_varint(out, point_ids[pv.point_index]);
        std::visit(
            [&out](const auto& v) {
                using T = std::decay_t<decltype(v)>;
                if constexpr (std::is_same_v<T, bool>) {
                    out += static_cast<char>(v ? kTrue : kFalse);
                } else if constexpr (std::is_same_v<T, std::int64_t>) {
                    out += static_cast<char>(kInt);
                    put_varint(out, zigzag(v));
                } else if constexpr (std::is_same_v<T, std::uint64_t>) {
                    out += static_cast<char>(kUint);
                    put_varint(out, v);
                } else if constexpr (std::is_same_v<T, double>) {
                    out += static_cast<char>(kDouble);
                    char raw[8];
                    std::memcpy(raw, &v, 8);
                    out.append(raw, 8);
                } else {
                    out += static_cast<char>(kString);
                    put_varint(out, v.size());
                    out += v;
                }
            },
            pv.value);
    }
    return out;
}

bool decode_record(const std::string& blob, std::vector<std::pair<std::uint32_t, core::Value>>& out) {
    std::size_t pos = 0;
    while (pos < blob.size()) {
        std::uint64_t point = 0, v = 0;
        if (!get_varint(blob, pos, point) || point > UINT32_MAX || pos >= blob.size()) return false;
        const auto tag = static_cast<std::uint8_t>(blob[pos++]);
        switch (tag) {
            case kFalse:
                out.emplace_back(static_cast<std::uint32_t>(point), core::Value{false});
                break;
            case kTrue:
                out.emplace_back(static_cast<std::uint32_t>(point), core::Value{true});
                break;
            case kInt:
                if (!get_varint(blob, pos, v)) return false;
                out.emplace_back(static_cast<std::uint32_t>(point), core::Value{unzigzag(v)});
                break;
            case kUint:
                if (!get_varint(blob, pos, v)) return false;
                out.emplace_back(static_cast<std::uint32_t>(point), core::Value{v});
                break;
            case kDouble: {
                if (blob.size() - pos < 8) return false;
                double d = 0;
                std::memcpy(&d, blob.data() + pos, 8);
                pos += 8;
                out.emplace_back(static_cast<std::uint32_t>(point), core::Value{d});
                break;
            }
            case kString:
                if (!get_varint(blob, pos, v) || v > blob.size() - pos) return false;
                // v fits size_t now, on 32-bit targets too (armhf): it is at most what is left.
                out.emplace_back(static_cast<std::uint32_t>(point),
                                 core::Value{blob.substr(pos, static_cast<std::size_t>(v))});
                pos += static_cast<std::size_t>(v);
                break;
            default:
                return false;
        }
    }
    return true;
}

}  // namespace fieldlink::store
