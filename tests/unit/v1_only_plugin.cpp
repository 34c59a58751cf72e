// Test plugin built for driver ABI version 1 (before struct sizes and bus models): a version-2
// host must refuse it with a clear message instead of reading its tables.
#include <cstddef>
#include <cstdint>

extern "C" __attribute__((visibility("default"))) const void* fl_driver_entry(const std::uint32_t* versions,
                                                                              std::size_t n, std::uint32_t* chosen) {
    for (std::size_t i = 0; i < n; ++i) {
        if (versions[i] == 1) {
            *chosen = 1;
            static int table;
            return &table;
        }
    }
    return nullptr;
}
