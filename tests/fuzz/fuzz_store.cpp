// The store on disk: any journal file (a power cut mid-write, a failing SD card) is read without a
// read out of bounds, and every batch it yields decodes to values or is refused.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "store/journal.hpp"
#include "store/record.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace fieldlink;
    const std::string bytes(reinterpret_cast<const char*>(data), size);
    store::JournalContents c;
    store::Journal::parse(bytes, c);
    if (c.valid_bytes + c.torn_bytes != size) __builtin_trap();
    for (const auto& b : c.batches) {
        std::vector<std::pair<std::uint32_t, core::Value>> values;
        store::decode_record(b.payload, values);
    }
    // The bytes as a payload too (an outbox row damaged on disk).
    std::vector<std::pair<std::uint32_t, core::Value>> values;
    store::decode_record(bytes, values);
    return 0;
}
