// HTML pieces the inventory and the report share: escaping, the page around them, and bar charts
// drawn as inline SVG (no script, nothing loaded from elsewhere).
#pragma once

#include <string>
#include <vector>

namespace lethe::jobs::evidence::html {

std::string esc(const std::string& s);

// A whole page: its title, inline CSS, `body`.
std::string page(const std::string& title, const std::string& body);

struct Bar {
  std::string label; // under the bar (a day, a drill)
  double value = 0;
};

// A bar chart of `bars` titled `title`, values in `unit`; each bar's value is printed above it
// (so the numbers are in the page text, not only in the picture). An empty series says so.
std::string bar_chart(const std::string& title, const std::vector<Bar>& bars,
                      const std::string& unit);

// A number as text: whole numbers without a fraction, others with up to 3 decimals.
std::string number(double v);

} // namespace lethe::jobs::evidence::html
