/*
 * fieldlink driver plugin ABI.
 *
 * A driver plugin is a shared object exporting one C symbol, FL_DRIVER_ENTRY_SYMBOL, of type
 * fl_driver_entry_fn. The host passes the ABI versions it supports; the plugin picks one and
 * returns a pointer to a static driver table of that version (or NULL when it supports none of
 * them, and the host refuses the plugin). Structs start with their size and keep reserved fields
 * so they can grow without breaking older plugins. No C++ types, exceptions or ownership cross
 * this boundary: strings and buffers passed in are borrowed for the duration of the call.
 *
 * See docs/DRIVER_ABI.md for the full contract.
 */
#ifndef FIELDLINK_DRIVER_H
#define FIELDLINK_DRIVER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FL_DRIVER_ABI_V1 1u
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

/* Detailed error classes a driver may report in fl_error_v1.kind, so the core can log once per
 * state change and count each class. */
typedef enum fl_error_kind {
    FL_ERRK_NONE = 0,
    FL_ERRK_TIMEOUT = 1,
    FL_ERRK_CRC = 2,
    FL_ERRK_EXCEPTION = 3, /* Modbus exception; code in fl_error_v1.code */
    FL_ERRK_LINK = 4,      /* connection refused / reset / device missing */
    FL_ERRK_PROTOCOL = 5,  /* malformed or unexpected response */
    FL_ERRK_OTHER = 6
} fl_error_kind;

typedef struct fl_error_v1 {
    uint32_t struct_size;
    uint32_t kind; /* fl_error_kind */
    int32_t code;  /* Modbus exception code or errno, 0 when not applicable */
    char message[200];
} fl_error_v1;

/* Option value types a driver can declare. The host parses YAML into the canonical text form
 * shown in brackets before calling create(). */
typedef enum fl_option_type {
    FL_OPT_STRING = 0,   /* [as written] */
    FL_OPT_INT = 1,      /* [decimal integer within min..max] */
    FL_OPT_DURATION = 2, /* [milliseconds as decimal integer]; YAML accepts 300ms, 5s, 1m, 2h */
    FL_OPT_ENUM = 3,     /* [one of the '|'-separated choices] */
    FL_OPT_BOOL = 4      /* [true|false] */
} fl_option_type;

typedef struct fl_option_v1 {
    const char* key;
    uint32_t type;             /* fl_option_type */
    const char* default_value; /* canonical text; NULL means required */
    const char* help;
    const char* choices;       /* FL_OPT_ENUM: "none|even|odd" */
    int64_t min;               /* FL_OPT_INT / FL_OPT_DURATION bounds (inclusive) */
    int64_t max;
    const char* drivers;       /* space-separated driver names it applies to; NULL = all */
    const void* reserved[2];
} fl_option_v1;

typedef struct fl_kv_v1 {
    const char* key;
    const char* value;
} fl_kv_v1;

/* One read of a contiguous range. For register areas `registers` holds `count` words (host
 * order, value = high byte << 8 | low byte as on the wire); for bit areas `bits` holds `count`
 * bytes of 0/1. */
typedef struct fl_read_v1 {
    uint32_t struct_size;
    uint8_t unit;
    uint8_t area; /* fl_area */
    uint16_t address;
    uint16_t count;
    uint16_t reserved0;
    uint16_t* registers;
    uint8_t* bits;
    void* reserved[2];
} fl_read_v1;

typedef struct fl_write_v1 {
    uint32_t struct_size;
    uint8_t unit;
    uint8_t area; /* FL_AREA_COIL or FL_AREA_HOLDING */
    uint16_t address;
    uint16_t count;
    uint16_t reserved0;
    const uint16_t* registers;
    const uint8_t* bits;
    void* reserved[2];
} fl_write_v1;

typedef struct fl_driver_v1 {
    uint32_t struct_size; /* sizeof(fl_driver_v1) as built by the plugin */
    uint32_t abi_version; /* FL_DRIVER_ABI_V1 */
    const char* plugin_name;
    const char* plugin_version;
    const char* const* driver_names; /* NULL-terminated: the `driver:` values this plugin serves */
    const fl_option_v1* options;
    size_t option_count;

    /* Create an instance for bus `driver_name` with validated options. On failure returns
     * FL_ERROR with err->message saying which option is wrong and what was expected. */
    fl_status (*create)(const char* driver_name, const fl_kv_v1* options, size_t option_count,
                        void** handle, fl_error_v1* err);
    /* Open the link (serial port, TCP connection). May be called again after a failure. */
    fl_status (*open)(void* handle, fl_error_v1* err);
    fl_status (*read)(void* handle, fl_read_v1* req, fl_error_v1* err);
    fl_status (*write)(void* handle, const fl_write_v1* req, fl_error_v1* err);
    /* Called from another thread: make blocking I/O return soon (at the latest after the
     * configured response timeout). Must be async-signal-safe in spirit: no allocation. */
    void (*interrupt)(void* handle);
    void (*close)(void* handle);
    void (*destroy)(void* handle);
    const void* reserved[8];
} fl_driver_v1;

/* Entry point. `host_versions` lists the ABI versions the host supports; the plugin writes the
 * one it picked to *chosen and returns its table (an fl_driver_v1* for version 1), or returns
 * NULL when it supports none of them. */
typedef const void* (*fl_driver_entry_fn)(const uint32_t* host_versions, size_t count,
                                          uint32_t* chosen);

#ifdef __cplusplus
}
#endif

#endif /* FIELDLINK_DRIVER_H */
