/*
 * fieldlink driver plugin ABI, version 2.
 *
 * A driver plugin is a shared object exporting one C symbol, FL_DRIVER_ENTRY_SYMBOL, of type
 * fl_driver_entry_fn. The host passes the ABI versions it supports; the plugin picks one and
 * returns a pointer to a static driver table of that version (or NULL when it supports none of
 * them, and the host refuses the plugin).
 *
 * Every struct that may grow starts with its size (struct_size, as built by whoever fills it)
 * and keeps reserved fields. Arrays of such structs (options, key/value pairs) are walked with
 * the element's own struct_size as the stride: use fl_option_at() and fl_kv_at(). A reader
 * never looks past struct_size, so an older peer's smaller struct stays readable.
 *
 * No C++ types, exceptions or ownership cross this boundary: strings and buffers passed in are
 * borrowed for the duration of the call. See docs/DRIVER_ABI.md for the full contract.
 */
#ifndef FIELDLINK_DRIVER_H
#define FIELDLINK_DRIVER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FL_DRIVER_ABI_V2 2u
#define FL_DRIVER_ENTRY_SYMBOL "fl_driver_entry"

/* Result of every driver call. */
typedef enum fl_status {
    FL_OK = 0,    /* done */
    FL_RETRY = 1, /* transient: timeout, busy, link down, CRC error; the core retries/backs off */
    FL_ERROR = 2  /* permanent: bad address, Modbus exception, bad option; the request is marked bad */
} fl_status;

/* Modbus data areas (also used by non-Modbus drivers that expose registers). */
typedef enum fl_area {
    FL_AREA_COIL = 0,     /* read/write bits, FC 1 / 5 / 15 */
    FL_AREA_DISCRETE = 1, /* read-only bits, FC 2 */
    FL_AREA_INPUT = 2,    /* read-only 16-bit registers, FC 4 */
    FL_AREA_HOLDING = 3   /* read/write 16-bit registers, FC 3 / 6 / 16 */
} fl_area;

/* Detailed error classes a driver may report in fl_error_v2.kind, so the core can log once per
 * state change and count each class. */
typedef enum fl_error_kind {
    FL_ERRK_NONE = 0,
    FL_ERRK_TIMEOUT = 1,
    FL_ERRK_CRC = 2,
    FL_ERRK_EXCEPTION = 3, /* Modbus exception; code in fl_error_v2.code */
    FL_ERRK_LINK = 4,      /* connection refused / reset / device missing */
    FL_ERRK_PROTOCOL = 5,  /* malformed or unexpected response */
    FL_ERRK_OTHER = 6
} fl_error_kind;

typedef struct fl_error_v2 {
    uint32_t struct_size;
    uint32_t kind; /* fl_error_kind */
    int32_t code;  /* Modbus exception code or errno, 0 when not applicable */
    char message[200];
} fl_error_v2;

/* Option value types a driver can declare. The host parses YAML into the canonical text form
 * shown in brackets before calling create(). */
typedef enum fl_option_type {
    FL_OPT_STRING = 0,   /* [as written] */
    FL_OPT_INT = 1,      /* [decimal integer within min..max] */
    FL_OPT_DURATION = 2, /* [milliseconds as decimal integer]; YAML accepts 300ms, 5s, 1m, 2h */
    FL_OPT_ENUM = 3,     /* [one of the '|'-separated choices] */
    FL_OPT_BOOL = 4      /* [true|false] */
} fl_option_type;

typedef struct fl_option_v2 {
    uint32_t struct_size; /* sizeof(fl_option_v2) as built by the plugin */
    uint32_t type;        /* fl_option_type */
    const char* key;
    const char* default_value; /* canonical text; NULL means required */
    const char* help;
    const char* choices; /* FL_OPT_ENUM: "none|even|odd" */
    int64_t min;         /* FL_OPT_INT / FL_OPT_DURATION bounds (inclusive) */
    int64_t max;
    const char* drivers; /* space-separated driver names it applies to; NULL = all */
    const void* reserved[2];
} fl_option_v2;

/* One validated option, canonical text (see fl_option_type). Filled by the host. */
typedef struct fl_kv_v2 {
    uint32_t struct_size;
    uint32_t reserved0;
    const char* key;
    const char* value;
} fl_kv_v2;

/* The element at index i of an array whose elements carry their own size. */
static inline const fl_option_v2* fl_option_at(const fl_option_v2* base, size_t i) {
    return (const fl_option_v2*)((const char*)base + i * base->struct_size);
}
static inline const fl_kv_v2* fl_kv_at(const fl_kv_v2* base, size_t i) {
    return (const fl_kv_v2*)((const char*)base + i * base->struct_size);
}

/* Units share one line and are answered strictly one at a time (a serial bus). */
#define FL_BUS_SHARED_LINE 0x1u

/* The driver's bus-time model for one configured bus: what a request costs on the wire against
 * one more register or bit in a request that is sent anyway. The host's read planner merges
 * nearby points while bridging a gap costs less than another request; the device's response
 * latency ("turnaround") is configured per bus and added by the host. */
typedef struct fl_bus_model_v2 {
    uint32_t struct_size;
    uint32_t flags;             /* FL_BUS_SHARED_LINE */
    double request_overhead_us; /* framing, checksums, headers and silent intervals of one request */
    double register_us;         /* one more 16-bit register in a response */
    double bit_us;              /* one more bit in a response */
    uint32_t max_registers;     /* largest register read per request (Modbus: 125) */
    uint32_t max_bits;          /* largest bit read per request (Modbus: 2000) */
    int32_t unit_min;           /* unit ids a device on this bus may use */
    int32_t unit_max;
    const void* reserved[4];
} fl_bus_model_v2;

/* Services the host offers a driver instance (passed to create(), valid until destroy()). */
typedef struct fl_host_v2 {
    uint32_t struct_size;
    uint32_t reserved0;
    void* ctx; /* pass back as the first argument */
    /* A library that waits with select() (libmodbus does, on TCP and RTU alike) may only be
     * given descriptors below FD_SETSIZE, whatever else the process has open. fd_low() moves
     * `fd` into a descriptor number the host reserved below FD_SETSIZE (closing `fd`) and
     * returns it; a descriptor already below FD_SETSIZE is returned unchanged. Returns -1 with
     * errno EMFILE when no reserved number is free. Thread-safe. */
    int (*fd_low)(void* ctx, int fd);
    /* Call before closing a descriptor that fd_low() returned: it gives the reserved number
     * back to the host atomically and returns the descriptor to close instead (the same open
     * file under another number). For any other descriptor it returns `fd` unchanged. */
    int (*fd_release)(void* ctx, int fd);
    const void* reserved[6];
} fl_host_v2;

/* One read of a contiguous range. For register areas `registers` holds `count` words (host
 * order, value = high byte << 8 | low byte as on the wire); for bit areas `bits` holds `count`
 * bytes of 0/1. */
typedef struct fl_read_v2 {
    uint32_t struct_size;
    uint8_t unit;
    uint8_t area; /* fl_area */
    uint16_t address;
    uint16_t count;
    uint16_t reserved0;
    uint16_t* registers;
    uint8_t* bits;
    /* Where the driver may say when the data it returns was taken, as CLOCK_MONOTONIC nanoseconds,
     * when that is not "now" (a sensor frame that streamed in before the poll asked for it). Set
     * by the host (to a zeroed value) or NULL; leave it alone when the data is fresh. Added in 0.4
     * in a pointer slot that was reserved (NULL). */
    int64_t* taken_at_ns;
    void* reserved[1];
} fl_read_v2;

typedef struct fl_write_v2 {
    uint32_t struct_size;
    uint8_t unit;
    uint8_t area; /* FL_AREA_COIL or FL_AREA_HOLDING */
    uint16_t address;
    uint16_t count;
    uint16_t reserved0;
    const uint16_t* registers;
    const uint8_t* bits;
    void* reserved[2];
} fl_write_v2;

/* One counter a driver instance keeps of what only the driver sees: replies that came too late and
 * were discarded, frames dropped by reason. `name` is a static lower_snake_case string (it becomes
 * a metric label and a JSON key); values only grow. */
typedef struct fl_counter_v2 {
    const char* name;
    uint64_t value;
} fl_counter_v2;

typedef struct fl_driver_v2 {
    uint32_t struct_size; /* sizeof(fl_driver_v2) as built by the plugin */
    uint32_t abi_version; /* FL_DRIVER_ABI_V2 */
    const char* plugin_name;
    const char* plugin_version;
    const char* const* driver_names; /* NULL-terminated: the `driver:` values this plugin serves */
    const fl_option_v2* options;     /* walk with fl_option_at() */
    size_t option_count;

    /* The bus-time model and unit range of bus `driver_name` with these validated options
     * (no instance, no I/O: also used by `fieldlinkd --check --plan`). */
    fl_status (*bus_model)(const char* driver_name, const fl_kv_v2* options, size_t option_count, fl_bus_model_v2* out,
                           fl_error_v2* err);
    /* Create an instance for bus `driver_name` with validated options. On failure returns
     * FL_ERROR with err->message saying which option is wrong and what was expected. */
    fl_status (*create)(const char* driver_name, const fl_kv_v2* options, size_t option_count, const fl_host_v2* host,
                        void** handle, fl_error_v2* err);
    /* Open the link (serial port, TCP connection). May be called again after a failure. */
    fl_status (*open)(void* handle, fl_error_v2* err);
    fl_status (*read)(void* handle, fl_read_v2* req, fl_error_v2* err);
    fl_status (*write)(void* handle, const fl_write_v2* req, fl_error_v2* err);
    /* Called from another thread: make blocking I/O return soon (at the latest after the
     * configured response timeout). Must be async-signal-safe in spirit: no allocation. */
    void (*interrupt)(void* handle);
    void (*close)(void* handle);
    void (*destroy)(void* handle);
    /* Optional (NULL in drivers that address data by area and address only). Drivers whose data
     * comes as named fields (serial-line sensors) say where a point's `field:` is read: the input
     * register `*address` where the field's value starts, as a float64 (4 registers, abcd). With
     * validated options, no instance, no I/O. FL_ERROR with err->message naming the fields there
     * are when `field` is not one of them. Added in 0.3 in a slot that was reserved (NULL). */
    fl_status (*field_address)(const char* driver_name, const fl_kv_v2* options, size_t option_count, const char* field,
                               uint16_t* address, fl_error_v2* err);
    /* Optional (NULL: the driver keeps no counters of its own). Writes up to `max` of the
     * instance's counters to `out` and returns how many it keeps (call with max 0 to ask). Called
     * from any thread, also while read() or write() runs on the bus's thread: the driver reads
     * them atomically. Added in 0.4 in a slot that was reserved (NULL). */
    size_t (*counters)(void* handle, fl_counter_v2* out, size_t max);
    const void* reserved[6];
} fl_driver_v2;

/* Entry point. `host_versions` lists the ABI versions the host supports; the plugin writes the
 * one it picked to *chosen and returns its table (an fl_driver_v2* for version 2), or returns
 * NULL when it supports none of them. */
typedef const void* (*fl_driver_entry_fn)(const uint32_t* host_versions, size_t count, uint32_t* chosen);

#ifdef __cplusplus
}
#endif

#endif /* FIELDLINK_DRIVER_H */
