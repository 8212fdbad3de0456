#include "jobs/evidence/html.hpp"

#include "worker/util/html.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace lethe::jobs::evidence::html {

std::string esc(const std::string& s) {
  return util::html_escape(s);
}

std::string page(const std::string& title, const std::string& body) {
  return "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
         "<meta name=\"viewport\" content=\"width=device-width\"><title>" +
         esc(title) +
         "</title><style>"
         "body{font:14px/1.45 sans-serif;max-width:72em;margin:2em auto;padding:0 1em;color:#222}"
         "h1{font-size:1.6em}h2{font-size:1.25em;border-bottom:1px solid #ccc;margin-top:1.8em}"
         "h3{font-size:1.05em}table{border-collapse:collapse;margin:.5em 0}"
         "th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}"
         "th{background:#f3f3f3}td.n{text-align:right}.ok{color:#175f17}.bad{color:#a61b1b;"
         "font-weight:bold}.muted{color:#666}.clause{font-weight:bold}"
         "svg{display:block;margin:.5em 0}code{font-size:12px}"
         "</style></head><body>\n" +
         body + "</body></html>\n";
}

std::string number(double v) {
  char buf[64];
  if (std::floor(v) == v && std::fabs(v) < 1e15) {
    std::snprintf(buf, sizeof buf, "%.0f", v);
  } else {
    std::snprintf(buf, sizeof buf, "%.3f", v);
    std::string s(buf);
    while (!s.empty() && s.back() == '0') {
      s.pop_back();
    }
    return s;
  }
  return buf;
}

std::string bar_chart(const std::string& title, const std::vector<Bar>& bars,
                      const std::string& unit) {
  if (bars.empty()) {
    return "<p class=\"muted\">" + esc(title) + ": nothing in this period.</p>\n";
  }
  const double width = 640;
  const double height = 180;
  const double top = 24;
  const double bottom = 40;
  double max = 0;
  for (const Bar& b : bars) {
    max = std::max(max, b.value);
  }
  double slot = width / static_cast<double>(bars.size());
  double bar = std::max(2.0, slot * 0.7);
  char buf[512];
  std::string svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" width=\"" +
                    number(width) + "\" height=\"" + number(height + top + bottom) +
                    "\" viewBox=\"0 0 " + number(width) + " " + number(height + top + bottom) +
                    "\"><title>" + esc(title) + "</title>";
  svg += "<line x1=\"0\" y1=\"" + number(top + height) + "\" x2=\"" + number(width) + "\" y2=\"" +
         number(top + height) + "\" stroke=\"#999\"/>";
  // Label every bar when they fit, else about twelve of them.
  size_t every = std::max<size_t>(1, bars.size() / 12 + (bars.size() % 12 != 0 ? 1 : 0));
  for (size_t i = 0; i < bars.size(); ++i) {
    double h = max > 0 ? bars[i].value / max * height : 0;
    double x = slot * static_cast<double>(i) + (slot - bar) / 2;
    std::snprintf(buf, sizeof buf,
                  "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"/>", x,
                  top + height - h, bar, h, bars[i].value > 0 ? "#3b6ea8" : "#bbb");
    svg += buf;
    if (bars.size() <= 31 || i % every == 0) {
      std::snprintf(buf, sizeof buf,
                    "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" text-anchor=\"middle\">",
                    x + bar / 2, top + height - h - 4);
      svg += buf + esc(number(bars[i].value)) + "</text>";
      std::snprintf(buf, sizeof buf,
                    "<text x=\"%.1f\" y=\"%.1f\" font-size=\"9\" text-anchor=\"end\" "
                    "transform=\"rotate(-35 %.1f %.1f)\">",
                    x + bar / 2, top + height + 12, x + bar / 2, top + height + 12);
      svg += buf + esc(bars[i].label) + "</text>";
    }
  }
  svg += "</svg>";
  return "<figure><figcaption>" + esc(title) + " (" + esc(unit) + ", highest " + esc(number(max)) +
         ")</figcaption>" + svg + "</figure>\n";
}

} // namespace lethe::jobs::evidence::html
