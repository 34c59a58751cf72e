#include "serve/request.hpp"

#include <modbus.h>

#include <optional>
#include <string>

#include "config/writes.hpp"
#include "mapping/decode.hpp"

namespace fieldlink::serve {

namespace {

constexpr std::size_t kHeader = 7;  // MBAP: transaction, protocol, length, unit

bool is_write(int fc) {
    return fc == MODBUS_FC_WRITE_SINGLE_COIL || fc == MODBUS_FC_WRITE_SINGLE_REGISTER ||
           fc == MODBUS_FC_WRITE_MULTIPLE_COILS || fc == MODBUS_FC_WRITE_MULTIPLE_REGISTERS;
}

Answer refused(int code) {
    Answer a;
    a.exception = code;
    return a;
}

Answer read_request(const Image& image, const Cache& cache, const std::vector<std::uint8_t>& adu, std::int64_t now_ms) {
    const int fc = adu[7];
    if (fc < MODBUS_FC_READ_COILS || fc > MODBUS_FC_READ_INPUT_REGISTERS) return refused(kIllegalFunction);
    if (adu.size() != kHeader + 5) return refused(kIllegalValue);
    Answer a;
    a.address = word_at(adu, 8);
    a.count = word_at(adu, 10);
    const bool bits = fc <= MODBUS_FC_READ_DISCRETE_INPUTS;
    if (a.count < 1 || a.count > (bits ? MODBUS_MAX_READ_BITS : MODBUS_MAX_READ_REGISTERS)) {
        return refused(kIllegalValue);
    }
    if (a.address + a.count > 65536) return refused(kIllegalAddress);
    a.area = fc == MODBUS_FC_READ_COILS               ? config::Area::coil
             : fc == MODBUS_FC_READ_DISCRETE_INPUTS   ? config::Area::discrete
             : fc == MODBUS_FC_READ_HOLDING_REGISTERS ? config::Area::holding
                                                      : config::Area::input;
    a.read = image.read(cache, adu[6], a.area, a.address, a.count, now_ms);
    a.exception = a.read.exception;
    return a;
}

// A write request: what it writes, by address (bits as 0/1); false when malformed.
bool written_values(const std::vector<std::uint8_t>& adu, config::Area& area, int& address,
                    std::vector<std::uint16_t>& values) {
    const int fc = adu[7];
    if (adu.size() < kHeader + 5) return false;
    address = word_at(adu, 8);
    area = fc == MODBUS_FC_WRITE_SINGLE_COIL || fc == MODBUS_FC_WRITE_MULTIPLE_COILS ? config::Area::coil
                                                                                     : config::Area::holding;
    if (fc == MODBUS_FC_WRITE_SINGLE_COIL || fc == MODBUS_FC_WRITE_SINGLE_REGISTER) {
        const int v = word_at(adu, 10);
        if (adu.size() != kHeader + 5 || (fc == MODBUS_FC_WRITE_SINGLE_COIL && v != 0xFF00 && v != 0)) return false;
        values = {static_cast<std::uint16_t>(fc == MODBUS_FC_WRITE_SINGLE_COIL ? (v != 0) : v)};
        return true;
    }
    const int count = word_at(adu, 10);
    const std::size_t bytes = adu.size() > kHeader + 5 ? adu[12] : 0;
    const bool coils = fc == MODBUS_FC_WRITE_MULTIPLE_COILS;
    const std::size_t need = coils ? static_cast<std::size_t>((count + 7) / 8) : static_cast<std::size_t>(count) * 2;
    if (count < 1 || count > (coils ? MODBUS_MAX_WRITE_BITS : MODBUS_MAX_WRITE_REGISTERS) || bytes != need ||
        adu.size() != kHeader + 6 + need || address + count > 65536) {
        return false;
    }
    for (int i = 0; i < count; ++i) {
        values.push_back(coils ? static_cast<std::uint16_t>((adu[13 + i / 8] >> (i % 8)) & 1)
                               : static_cast<std::uint16_t>(word_at(adu, 13 + 2 * static_cast<std::size_t>(i))));
    }
    return true;
}

// A write to served points: each one whole, writable, of one device, and accepted as a cloud's
// write would be.
Answer write_request(const config::Config& cfg, const Image& image, const std::vector<std::uint8_t>& adu) {
    config::Area area = config::Area::holding;
    int address = 0;
    std::vector<std::uint16_t> words;
    if (!written_values(adu, area, address, words)) return refused(kIllegalValue);
    const auto& map = cfg.gateway.modbus_server.map;
    auto job = std::make_shared<core::WriteJob>();
    for (std::size_t i = 0; i < words.size();) {
        const auto where = image.at(adu[6], area, address + static_cast<int>(i));
        const config::ServedPoint* sp = where && where->offset == 0 ? &map[where->entry] : nullptr;
        const config::PointConfig* p = sp ? &cfg.devices[sp->device_index].points[sp->point_index] : nullptr;
        const std::size_t n = !p ? 0
                              : config::is_bit_area(area)
                                  ? 1
                                  : static_cast<std::size_t>(config::register_count(p->type, p->length));
        if (!p || !p->writable || i + n > words.size() || (!job->values.empty() && job->device != sp->device_index)) {
            return refused(kIllegalAddress);  // not served, not whole, read-only, or two devices
        }
        std::string why;
        const auto value = config::is_bit_area(area)
                               ? std::optional<core::Value>(core::Value{words[i] != 0})
                               : mapping::decode_registers(mapping::codec_of(*p), &words[i], n, &why);
        const auto accepted = value ? config::accept_write(*p, *value, &why) : std::nullopt;
        if (!accepted) return refused(kIllegalValue);
        job->device = sp->device_index;
        job->values.push_back({sp->point_index, *accepted});
        i += n;
    }
    Answer a;
    a.write = std::move(job);
    return a;
}

}  // namespace

long next_request(const std::vector<std::uint8_t>& in) {
    if (in.size() < kHeader + 1) return 0;
    const auto length = static_cast<std::size_t>(word_at(in, 4));
    if (word_at(in, 2) != 0 || length < 2 || length > 254) return -1;
    return in.size() < 6 + length ? 0 : static_cast<long>(6 + length);
}

Answer answer_request(const config::Config& cfg, const Image& image, const Cache& cache,
                      const std::vector<std::uint8_t>& adu, std::int64_t now_ms) {
    if (adu.size() < kHeader + 1) return refused(kIllegalValue);
    return is_write(adu[7]) ? write_request(cfg, image, adu) : read_request(image, cache, adu, now_ms);
}

int exception_of(const core::WriteJob& job) {
    using F = core::WriteJob::Failure;
    if (job.ok) return 0;
    switch (job.failure) {
        case F::refused:
            return kIllegalValue;
        case F::exception:
        case F::mismatch:
            return kDeviceFailure;
        default:  // timeout, link, expired
            return kTargetFailed;
    }
}

}  // namespace fieldlink::serve
