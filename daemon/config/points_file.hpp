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
