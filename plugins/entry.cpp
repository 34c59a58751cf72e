// The one exported symbol of a driver module: picks ABI version 2 if the host offers it.
// FL_PLUGIN_TABLE names the plugin's table function (set per plugin in its CMakeLists.txt).
#include <fieldlink/driver.h>

extern "C" const fl_driver_v2* FL_PLUGIN_TABLE(void);

extern "C" __attribute__((visibility("default"))) const void* fl_driver_entry(const uint32_t* host_versions,
                                                                              size_t count, uint32_t* chosen) {
    for (size_t i = 0; i < count; ++i) {
        if (host_versions[i] == FL_DRIVER_ABI_V2) {
            *chosen = FL_DRIVER_ABI_V2;
            return FL_PLUGIN_TABLE();
        }
    }
    return nullptr;
}
