#include "cli/ports.hpp"

#include <libserialport.h>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

namespace fieldlink::cli {

namespace {

std::string text(const char* s) {
    return s ? s : "";
}

// /dev/serial/by-id/<link> for each port it points at (udev makes them for USB adapters).
std::map<std::string, std::string> by_id_links() {
    std::map<std::string, std::string> links;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator("/dev/serial/by-id", ec)) {
        const auto target = std::filesystem::canonical(e.path(), ec);
        if (!ec) links[target.string()] = e.path().string();
    }
    return links;
}

}  // namespace

int print_ports(bool json) {
    sp_port** ports = nullptr;
    if (sp_list_ports(&ports) != SP_OK) {
        char* msg = sp_last_error_message();
        std::cerr << "fieldlink ports: cannot list the serial ports: " << (msg ? msg : "unknown error") << '\n';
        if (msg) sp_free_error_message(msg);
        return 1;
    }
    const auto links = by_id_links();
    nlohmann::json out = nlohmann::json::array();
    for (int i = 0; ports[i]; ++i) {
        sp_port* p = ports[i];
        nlohmann::json e;
        const std::string name = text(sp_get_port_name(p));
        e["name"] = name;
        e["description"] = text(sp_get_port_description(p));
        const auto transport = sp_get_port_transport(p);
        e["transport"] = transport == SP_TRANSPORT_USB         ? "usb"
                         : transport == SP_TRANSPORT_BLUETOOTH ? "bluetooth"
                                                               : "native";
        std::string device = name;
        if (auto l = links.find(name); l != links.end()) {
            e["by_id"] = l->second;
            device = l->second;
        }
        if (transport == SP_TRANSPORT_USB) {
            int vid = 0, pid = 0;
            if (sp_get_port_usb_vid_pid(p, &vid, &pid) == SP_OK) {
                char id[16];
                std::snprintf(id, sizeof id, "%04x:%04x", vid & 0xFFFF, pid & 0xFFFF);
                e["usb_id"] = id;
            }
            e["manufacturer"] = text(sp_get_port_usb_manufacturer(p));
            e["product"] = text(sp_get_port_usb_product(p));
            const std::string serial = text(sp_get_port_usb_serial(p));
            e["serial"] = serial;
            if (!serial.empty()) device = "usb:" + serial;
        }
        e["device"] = device;  // what to write as the bus's `device:`: survives a new ttyUSB number
        out.push_back(std::move(e));
    }
    sp_free_port_list(ports);
    if (json) {
        std::cout << out.dump(2) << '\n';
        return 0;
    }
    if (out.empty()) {
        std::cout << "no serial ports found\n";
        return 0;
    }
    std::printf("%-16s %-9s %-10s %-28s %s\n", "PORT", "TRANSPORT", "USB ID", "DESCRIPTION", "CONFIGURE AS device:");
    for (const auto& e : out) {
        std::printf("%-16s %-9s %-10s %-28s %s\n", e["name"].get<std::string>().c_str(),
                    e["transport"].get<std::string>().c_str(), e.value("usb_id", "-").c_str(),
                    e["description"].get<std::string>().substr(0, 28).c_str(), e["device"].get<std::string>().c_str());
    }
    return 0;
}

}  // namespace fieldlink::cli
