// Text made safe inside HTML elements and attribute values (the certificate, the inventory, the
// report): & < > " ' as character references.
#pragma once

#include <string>

namespace lethe::util {

std::string html_escape(const std::string& s);

} // namespace lethe::util
