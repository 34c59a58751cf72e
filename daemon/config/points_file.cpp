#include "points_file.hpp"

#include <csv.h>

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>

#include "core/suggest.hpp"
#include "reader.hpp"

namespace fieldlink::config {
namespace {

// libcsv calls back at the end of each field and each row; fed one byte at a time, the parser
// tells where every cell starts.
struct Collect {
    std::shared_ptr<const std::string> file;
    int line = 1, column = 1;                         // of the next byte
    Mark start;                                       // of the cell being read
    bool need_start = true;                           // the next byte begins a cell
    std::vector<std::pair<std::string, Mark>> cells;  // the row being read
    std::vector<std::vector<std::pair<std::string, Mark>>> rows;
};

void on_field(void* data, std::size_t size, void* user) {
    auto* c = static_cast<Collect*>(user);
    c->cells.emplace_back(data ? std::string(static_cast<const char*>(data), size) : std::string(), c->start);
    c->need_start = true;
}

void on_row(int, void* user) {
    auto* c = static_cast<Collect*>(user);
    c->rows.push_back(std::move(c->cells));
    c->cells.clear();
    c->need_start = true;
}

// A cell as the YAML reader would take it: surrounding blanks removed.
std::string trimmed(const std::string& s) {
    const auto b = s.find_first_not_of(" \t");
    if (b == std::string::npos) return {};
    const auto e = s.find_last_not_of(" \t\r");
    return s.substr(b, e - b + 1);
}

// `text` with the lines that start with '#' blanked (their newlines kept, so positions hold): a
// comment is free text, quotes and all, which CSV's strict quoting would refuse.
std::string without_comments(const std::string& text) {
    std::string out = text;
    bool line_start = true, in_comment = false;
    for (char& ch : out) {
        if (ch == '\n') {
            line_start = true;
            in_comment = false;
            continue;
        }
        if (line_start && ch == '#') in_comment = true;
        if (line_start && ch != ' ' && ch != '\t') line_start = false;
        if (in_comment) ch = ' ';
    }
    return out;
}

bool is_comment(const std::vector<std::pair<std::string, Mark>>& row) {
    return !row.empty() && trimmed(row.front().first).rfind('#', 0) == 0;
}

bool is_blank(const std::vector<std::pair<std::string, Mark>>& row) {
    return std::all_of(row.begin(), row.end(), [](const auto& c) { return trimmed(c.first).empty(); });
}

// The header: every column known and named once. Returns the column names (empty: refused).
std::vector<std::string> read_header(const std::vector<std::pair<std::string, Mark>>& row, Reader& r) {
    std::vector<std::string> names;
    bool ok = true;
    for (const auto& [text, mark] : row) {
        const std::string name = trimmed(text);
        const auto& known = points_file_columns();
        if (std::find(known.begin(), known.end(), name) == known.end()) {
            std::string list;
            for (const auto& k : known) {
                if (!list.empty()) list += ", ";
                list += k;
            }
            std::string message = "unknown column '";
            message += name;
            message += "'";
            message += core::did_you_mean(name, known);
            message += " in the header; expected columns among: ";
            message += list;
            r.error_at(mark, r.path(), message);
            ok = false;
        } else if (std::find(names.begin(), names.end(), name) != names.end()) {
            r.error_at(mark, r.path(), "column '" + name + "' is named twice in the header");
            ok = false;
        }
        names.push_back(name);
    }
    if (ok && std::find(names.begin(), names.end(), "name") == names.end()) {
        r.error_at(row.front().second, r.path(), "the header has no 'name' column");
        ok = false;
    }
    return ok ? names : std::vector<std::string>{};
}

}  // namespace

#ifndef FIELDLINK_BUILD_ROOT
#define FIELDLINK_BUILD_ROOT ""
#endif
#ifndef FIELDLINK_SOURCE_PROFILE_DIR
#define FIELDLINK_SOURCE_PROFILE_DIR ""
#endif
#ifndef FIELDLINK_INSTALL_PROFILE_DIR
#define FIELDLINK_INSTALL_PROFILE_DIR "/usr/share/fieldlink/profiles"
#endif

std::string profile_dir() {
    if (const char* env = std::getenv("FIELDLINK_PROFILE_DIR"); env && *env) return env;
    std::string source = FIELDLINK_SOURCE_PROFILE_DIR;
    const std::string root = FIELDLINK_BUILD_ROOT;
    char exe[4096];
    const ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    const std::string self = n > 0 ? std::string(exe, static_cast<std::size_t>(n)) : std::string();
    std::error_code ec;
    if (!source.empty() && !root.empty() && self.rfind(root, 0) == 0 && std::filesystem::is_directory(source, ec)) {
        return source;
    }
    return FIELDLINK_INSTALL_PROFILE_DIR;
}

std::string resolve_points_file(const std::string& name, const std::string& config_dir) {
    if (name.empty() || name.front() == '/') return name;
    std::string local = config_dir.empty() ? name : config_dir + "/" + name;
    std::error_code ec;
    if (std::filesystem::exists(local, ec) || name.find('/') != std::string::npos) return local;
    const std::string shipped = profile_dir() + "/" + name;
    return std::filesystem::exists(shipped, ec) ? shipped : local;
}

const std::vector<std::string>& points_file_columns() {
    static const std::vector<std::string> kColumns = {
        "name",      "area",      "address", "type",  "order",   "scale", "offset",
        "unit",      "writable",  "min",     "max",   "length",  "bit",   "deadband",
        "on_change", "heartbeat", "report",  "event", "trigger", "poll",  "aggregate"};
    return kColumns;
}

namespace {

// The cells of every row, with their positions; false (error recorded) when the CSV is malformed.
bool parse_cells(const std::string& text, const std::shared_ptr<const std::string>& file, Reader& r, Collect& c) {
    std::string error;
    Mark where;
    if (read_csv(text, file, c.rows, error, where)) return true;
    r.error_at(where, r.path(), error);
    return false;
}

}  // namespace

bool read_csv(const std::string& text, const std::shared_ptr<const std::string>& file, std::vector<CsvCells>& rows,
              std::string& error, Mark& where) {
    Collect c;
    c.file = file;
    csv_parser p{};
    csv_init(&p, CSV_STRICT | CSV_STRICT_FINI | CSV_APPEND_NULL | CSV_EMPTY_IS_NULL);
    bool broken = false;
    for (const char ch : text) {
        if (c.need_start) {
            c.start = Mark{c.line, c.column, file};
            c.need_start = false;
        }
        if (csv_parse(&p, &ch, 1, on_field, on_row, &c) != 1) {
            error = std::string("not a valid CSV file here: ") + csv_strerror(csv_error(&p)) +
                    " (a quote inside a quoted cell is written twice)";
            broken = true;
            break;
        }
        if (ch == '\n') {
            ++c.line;
            c.column = 1;
        } else {
            ++c.column;
        }
    }
    if (!broken && csv_fini(&p, on_field, on_row, &c) != 0) {
        error = "not a valid CSV file: a quoted cell is not closed";
        broken = true;
    }
    csv_free(&p);
    where = Mark{c.line, c.column, file};
    rows = std::move(c.rows);
    return !broken;
}

std::vector<CsvRow> read_points_csv(const std::string& text, const std::shared_ptr<const std::string>& file,
                                    Reader& r) {
    Collect c;
    std::vector<CsvRow> out;
    if (!parse_cells(without_comments(text), file, r, c)) return out;
    std::vector<std::string> header;
    bool header_seen = false;
    for (const auto& row : c.rows) {
        if (is_blank(row) || is_comment(row)) continue;
        if (!header_seen) {
            header_seen = true;
            header = read_header(row, r);
            if (header.empty()) return out;
            continue;
        }
        if (row.size() > header.size()) {
            r.error_at(row[header.size()].second, r.path(),
                       "this row has " + std::to_string(row.size()) + " cells; the header names " +
                           std::to_string(header.size()) + " columns");
            continue;
        }
        CsvRow x;
        x.mark = row.front().second;
        for (std::size_t i = 0; i < row.size(); ++i) {
            const std::string v = trimmed(row[i].first);
            if (v.empty()) continue;
            x.map[header[i]] = v;
            x.cell_marks.emplace_back(x.map[header[i]], row[i].second);
        }
        out.push_back(std::move(x));
    }
    if (!header_seen) {
        r.error_at(Mark{1, 1, file}, r.path(),
                   "the points file is empty; expected a header row (name,area,address,...)");
    }
    return out;
}

namespace {
thread_local const CsvRow* t_row = nullptr;  // NOLINT(cppcoreguidelines-avoid-non-const-global-variables)
}  // namespace

RowMarks::RowMarks(const CsvRow& row) {
    t_row = &row;
}
RowMarks::~RowMarks() {
    t_row = nullptr;
}

bool RowMarks::find(const YAML::Node& n, Mark& out) {
    if (!t_row) return false;
    for (const auto& [node, mark] : t_row->cell_marks) {
        if (node.is(n)) {
            out = mark;
            return true;
        }
    }
    out = t_row->mark;  // the row itself, or a node made from it
    return true;
}

}  // namespace fieldlink::config
