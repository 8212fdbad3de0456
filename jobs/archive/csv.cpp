#include "jobs/archive/csv.hpp"

namespace lethe::jobs::archive {

bool for_each_csv_record(std::string_view data, const std::function<void(const CsvRecord&)>& each) {
  CsvRecord rec;
  size_t start = 0; // of the record
  size_t i = 0;
  while (i < data.size()) {
    rec.fields.clear();
    for (;;) { // one field, then its delimiter or the record's end
      if (i < data.size() && data[i] == '"') {
        std::string value;
        ++i;
        for (;;) {
          if (i >= data.size()) {
            return false; // a quote left open
          }
          if (data[i] == '"') {
            if (i + 1 < data.size() && data[i + 1] == '"') {
              value += '"';
              i += 2;
              continue;
            }
            ++i;
            break;
          }
          value += data[i++];
        }
        rec.fields.emplace_back(std::move(value));
        if (i < data.size() && data[i] != ',' && data[i] != '\n') {
          return false; // text after a closing quote
        }
      } else {
        size_t end = data.find_first_of(",\n", i);
        if (end == std::string_view::npos) {
          end = data.size();
        }
        if (data.substr(i, end - i).find('"') != std::string_view::npos) {
          return false; // a quote inside an unquoted field
        }
        if (end == i) {
          rec.fields.emplace_back(std::nullopt);
        } else {
          rec.fields.emplace_back(std::string(data.substr(i, end - i)));
        }
        i = end;
      }
      if (i < data.size() && data[i] == ',') {
        ++i;
        continue;
      }
      break; // '\n' or the end of the data
    }
    if (i < data.size()) {
      ++i; // the line end
    }
    rec.raw = data.substr(start, i - start);
    each(rec);
    start = i;
  }
  return true;
}

} // namespace lethe::jobs::archive
