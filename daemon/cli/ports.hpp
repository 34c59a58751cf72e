#pragma once

namespace fieldlink::cli {

// `fieldlink ports`: the serial ports libserialport finds, with their USB identities and the
// /dev/serial/by-id/ links that point at them, and the stable `device:` value to configure
// (usb:SERIAL, else the by-id link, else the port name). As a table, or JSON with `json`.
int print_ports(bool json);

}  // namespace fieldlink::cli
