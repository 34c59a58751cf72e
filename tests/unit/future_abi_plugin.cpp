// Test plugin: supports only driver ABI version 99, so a version-2 host must refuse it.
#include <fieldlink/driver.h>

extern "C" __attribute__((visibility("default"))) const void* fl_driver_entry(const uint32_t* versions, size_t n,
                                                                              uint32_t* chosen) {
    for (size_t i = 0; i < n; ++i) {
        if (versions[i] == 99) {
            *chosen = 99;
            static int table;
            return &table;
        }
    }
    return nullptr;
}
