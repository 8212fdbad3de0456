#include "jobs/request/request.hpp"
#include "worker/util/error.hpp"

#include <algorithm>

namespace lethe::jobs::request {
namespace {

bool all_of(const std::string& s, bool (*ok)(char)) {
  return std::all_of(s.begin(), s.end(), ok);
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

bool is_id_char(char c) {
  return is_digit(c) || (c >= 'A' && c <= 'Z');
}

// SP-API's AmazonOrderId: 3-7-7 digits.
bool is_order_id(const std::string& s) {
  return s.size() == 19 && s[3] == '-' && s[11] == '-' && all_of(s.substr(0, 3), is_digit) &&
         all_of(s.substr(4, 7), is_digit) && all_of(s.substr(12), is_digit);
}

// SellerId and MarketplaceId: upper-case letters and digits (e.g. A2EUQ1WTGCTBG2).
bool is_amazon_id(const std::string& s) {
  return s.size() >= 8 && s.size() <= 20 && all_of(s, is_id_char);
}

bool is_email(const std::string& s) {
  size_t at = s.find('@');
  if (s.size() < 3 || s.size() > 254 || at == std::string::npos || at == 0 ||
      s.find('@', at + 1) != std::string::npos) {
    return false;
  }
  std::string domain = s.substr(at + 1);
  size_t dot = domain.find('.');
  if (dot == std::string::npos || dot == 0 || domain.back() == '.') {
    return false;
  }
  return std::none_of(s.begin(), s.end(),
                      [](char c) { return static_cast<unsigned char>(c) <= ' ' || c == 0x7f; });
}

std::string trimmed(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  size_t e = s.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

Error bad(const std::string& what, const std::string& source, const std::string& hint) {
  // The value itself is never repeated: it may be a buyer's identifier.
  return Error(Exit::usage, what + " (" + source + ")", hint);
}

} // namespace

Scope::~Scope() {
  std::fill(buyer.begin(), buyer.end(), '\0');
}

Scope parse_scope(const std::string& raw, const std::string& source) {
  const std::string k_forms = "order:ID[,ID...], buyer:EMAIL or seller:SELLER_ID[/MARKETPLACE_ID]";
  std::string text = trimmed(raw);
  size_t colon = text.find(':');
  if (colon == std::string::npos) {
    throw bad("the scope does not begin with order:, buyer: or seller:", source,
              "write the scope as " + k_forms);
  }
  Scope sc;
  sc.kind = text.substr(0, colon);
  std::string rest = text.substr(colon + 1);
  if (sc.kind == "order") {
    size_t pos = 0;
    int n = 0;
    while (true) {
      size_t comma = rest.find(',', pos);
      std::string id = trimmed(rest.substr(pos, comma == std::string::npos ? comma : comma - pos));
      ++n;
      if (!is_order_id(id)) {
        throw bad("order id " + std::to_string(n) + " is not an Amazon order id", source,
                  "an AmazonOrderId is 3-7-7 digits, e.g. 123-1234567-1234567; separate ids "
                  "with commas");
      }
      sc.order_ids.push_back(id);
      if (comma == std::string::npos) {
        break;
      }
      pos = comma + 1;
    }
    std::sort(sc.order_ids.begin(), sc.order_ids.end());
    sc.order_ids.erase(std::unique(sc.order_ids.begin(), sc.order_ids.end()), sc.order_ids.end());
  } else if (sc.kind == "buyer") {
    sc.buyer = rest;
    std::fill(rest.begin(), rest.end(), '\0');
    if (!is_email(sc.buyer)) {
      throw bad("the buyer's identifier is not an email address", source,
                "give the buyer's email as the seller app stores it");
    }
  } else if (sc.kind == "seller") {
    size_t slash = rest.find('/');
    sc.seller = rest.substr(0, slash);
    if (slash != std::string::npos) {
      sc.marketplace = rest.substr(slash + 1);
    }
    if (!is_amazon_id(sc.seller)) {
      throw bad("the SellerId is not one", source,
                "a SellerId is 8 to 20 upper-case letters and digits, e.g. A2EUQ1WTGCTBG2");
    }
    if (slash != std::string::npos && !is_amazon_id(sc.marketplace)) {
      throw bad("the MarketplaceId after '/' is not one", source,
                "a MarketplaceId is 8 to 20 upper-case letters and digits, e.g. ATVPDKIKX0DER");
    }
  } else {
    throw bad("the scope's kind is not order, buyer or seller", source,
              "write the scope as " + k_forms);
  }
  std::fill(text.begin(), text.end(), '\0');
  return sc;
}

} // namespace lethe::jobs::request
