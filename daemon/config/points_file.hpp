// Register maps from CSV files (`points_file: meter.csv` on a device or template): one point per
// row, the columns named by a header row, read with libcsv. Each row becomes a mapping that goes
// through the same point table as the YAML's `points:`, so the rules and messages are the same;
// errors name file:line:column of the cell.
#pragma once

#include <yaml-cpp/yaml.h>

#include <memory>
#include <string>
#include <vector>

#include "config.hpp"

namespace fieldlink::config {

class Reader;

// One data row of a points file: its cells as a mapping (header name -> text; empty cells left
// out), and where each cell and the row itself start.
struct CsvRow {
    YAML::Node map = YAML::Node(YAML::NodeType::Map);
    Mark mark;                                            // the row's first cell
    std::vector<std::pair<YAML::Node, Mark>> cell_marks;  // each cell's value node and position
};

// The profile library's directory (register maps of common meters and inverters, shipped with
// the package): $FIELDLINK_PROFILE_DIR, else the source tree's profiles/ for a binary run from
// the build tree, else the installed one (/usr/share/fieldlink/profiles).
std::string profile_dir();

// Where `points_file: name` is read: an absolute path as it is; a relative one from the main
// configuration file's directory (`config_dir`), or, when there is no such file and the name
// has no '/', from the profile library.
std::string resolve_points_file(const std::string& name, const std::string& config_dir);

// A CSV row's cells, each with the position where it starts.
using CsvCells = std::vector<std::pair<std::string, Mark>>;
// Every row of `text` (RFC 4180, strict, by libcsv); false with what is wrong in `error` and
// where in `where` when it is not valid CSV.
bool read_csv(const std::string& text, const std::shared_ptr<const std::string>& file, std::vector<CsvCells>& rows,
              std::string& error, Mark& where);

// The columns a points file may have, in the order the documentation lists them.
const std::vector<std::string>& points_file_columns();

// Parses `text` (the contents of `file`) into rows. Errors (no header, an unknown or repeated
// column, a row longer than the header, malformed quoting) go to `r` with the file's positions.
std::vector<CsvRow> read_points_csv(const std::string& text, const std::shared_ptr<const std::string>& file, Reader& r);

// While it lives, Reader::mark_of gives a node of `row` the position of its cell in the file.
struct RowMarks {
    explicit RowMarks(const CsvRow& row);
    ~RowMarks();
    RowMarks(const RowMarks&) = delete;
    RowMarks& operator=(const RowMarks&) = delete;
    // The position of `n` when it is a cell (or the row) of the current row.
    static bool find(const YAML::Node& n, Mark& out);
};

}  // namespace fieldlink::config
