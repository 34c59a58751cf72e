// What a reload changes: settings compared by value (positions in the file are not part of a
// setting), and the new configuration's devices placed where the running one has them, so that
// a device index keeps naming the same device across reloads (sessions, bus workers, the store
// and batches in flight all refer to devices by index).
#pragma once

#include "config/config.hpp"

namespace fieldlink::config {

// Equal settings; marks (file positions) and indexes resolved by validation are ignored (the
// names they were resolved from are compared instead).
bool same_gateway(const GatewayConfig& a, const GatewayConfig& b);
bool same_cloud(const CloudConfig& a, const CloudConfig& b);
bool same_bus(const BusConfig& a, const BusConfig& b);
bool same_device(const DeviceConfig& a, const DeviceConfig& b);

// Reorders `next.devices` so that every device also in `prev` (by name) has its index there;
// indexes of devices `prev` had and `next` does not are kept by retired entries (no cloud, no
// bus, no points), and new devices come after. Indexes resolved from device names (`via`) are
// updated. Retired entries are never reused, so a batch or write still carrying a removed
// device's index finds no device rather than another one.
void align_devices(const Config& prev, Config& next);

}  // namespace fieldlink::config
