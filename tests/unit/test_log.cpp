#include <doctest/doctest.h>

#include <string>

#include "core/log.hpp"

using fieldlink::core::printable;

TEST_CASE("outside text in a log line: control characters and broken UTF-8 escaped, long text cut") {
    CHECK(printable("plain text") == "plain text");
    CHECK(printable("a\nb\rc\td") == "a\\nb\\rc\\td");
    CHECK(printable("\x1b[31mred\x1b[0m") == "\\x1b[31mred\\x1b[0m");
    CHECK(printable(std::string("nul\0byte", 8)) == "nul\\x00byte");
    CHECK(printable("\x7f") == "\\x7f");
    CHECK(printable("温度 25 °C") == "温度 25 °C");         // whole UTF-8 sequences pass
    CHECK(printable("\xff\xfe") == "\\xff\\xfe");           // never UTF-8
    CHECK(printable("\xe6\xb8") == "\\xe6\\xb8");           // cut short
    CHECK(printable("\xc0\xaf") == "\\xc0\\xaf");           // overlong '/'
    CHECK(printable("\xed\xa0\x80") == "\\xed\\xa0\\x80");  // a surrogate
    CHECK(printable(std::string(1000, 'y'), 10) == "yyyyyyyyyy... (990 more bytes)");
}
