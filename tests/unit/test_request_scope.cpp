#include "jobs/request/request.hpp"
#include "worker/util/error.hpp"

#include <catch2/catch.hpp>

using namespace lethe;
using jobs::request::parse_scope;

namespace {

// The usage error for `text`, which must never repeat the value.
std::string refusal(const std::string& text, const std::string& secret) {
  try {
    parse_scope(text, "--scope");
  } catch (const Error& e) {
    CHECK(e.code() == Exit::usage);
    CHECK_FALSE(e.hint().empty());
    CHECK(std::string(e.what()).find(secret) == std::string::npos);
    return e.what();
  }
  FAIL("accepted: " + text);
  return {};
}

} // namespace

TEST_CASE("request scope: order ids, a buyer's email, a seller with a marketplace") {
  jobs::request::Scope o = parse_scope("order:111-2222222-3333333, 111-2222222-3333333,"
                                       "000-0000000-0000001",
                                       "--scope");
  CHECK(o.kind == "order");
  CHECK(o.order_ids == std::vector<std::string>{"000-0000000-0000001", "111-2222222-3333333"});
  jobs::request::Scope b = parse_scope("buyer:jane.roe+x@mail.example\n", "standard input");
  CHECK(b.kind == "buyer");
  CHECK(b.buyer == "jane.roe+x@mail.example");
  jobs::request::Scope s = parse_scope("seller:A2EUQ1WTGCTBG2/ATVPDKIKX0DER", "--scope");
  CHECK(s.seller == "A2EUQ1WTGCTBG2");
  CHECK(s.marketplace == "ATVPDKIKX0DER");
  CHECK(parse_scope("seller:A2EUQ1WTGCTBG2", "--scope").marketplace.empty());
}

TEST_CASE("request scope: a malformed part is named by position, never by value") {
  CHECK(refusal("order:111-2222222-3333333,12-34", "12-34").find("order id 2 ") == 0);
  CHECK(refusal("order:", "order:").find("order id 1 ") == 0);
  CHECK(refusal("buyer:jane roe@mail.example", "jane").find("not an email") != std::string::npos);
  refusal("buyer:jane@localhost", "jane");
  refusal("buyer:a@b@c.example", "a@b");
  refusal("seller:a2euq1wtgctbg2", "a2euq");
  refusal("seller:A2EUQ1WTGCTBG2/atv", "atv");
  refusal("customer:A2EUQ1WTGCTBG2", "A2EUQ");
  refusal("111-2222222-3333333", "111-2222222");
}
