#include "sample/generator.hpp"

#include <algorithm>
#include <array>
#include <cstdio>
#include <ctime>
#include <functional>

namespace lethe::sample {
namespace {

constexpr std::array k_first{"Ada",  "Bruno", "Chidi", "Dagny", "Emeka", "Farah", "Goran", "Hana",
                             "Ines", "Jonas", "Kiri",  "Lior",  "Mika",  "Nadia", "Oskar", "Priya"};
constexpr std::array k_last{"Quill", "Rask", "Sorel",  "Tamm", "Ulvang", "Vidal",
                            "Wyss",  "Xu",   "Yilmaz", "Zell", "Abara",  "Brandt",
                            "Coutu", "Dorn", "Eklund", "Fenn"};
constexpr std::array k_cities{"Springfield", "Riverton",    "Lakeview",  "Fairmont",
                              "Brookhaven",  "Cedar Falls", "Millbrook", "Oakridge"};
constexpr std::array k_states{"WA", "OR", "CA", "NY", "TX", "IL", "MA", "FL"};
constexpr std::array k_sellers{"A1SELLERNORTH", "A2SELLERSOUTH", "A3SELLEREAST"};
constexpr std::array k_titles{
    "Stainless water bottle 750 ml", "USB-C cable 2 m", "Cast iron skillet 26 cm",
    "Merino socks (3 pairs)",        "LED desk lamp",   "Notebook A5 dotted"};

std::string iso(long long epoch) {
  std::time_t t = static_cast<std::time_t>(epoch);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S+00", &tm);
  return buf;
}

void field(std::string& line, const db::Value& v) {
  if (!line.empty()) {
    line += '\t';
  }
  db::copy_field(line, v);
}

struct Order {
  long index = 0;
  std::string id;
  std::string status;
  bool business = false;
  int items = 1;
};

// Everything about order `i` comes from a generator seeded with (seed, i), so each table's pass
// re-derives the same order without keeping it in memory.
Rng order_rng(const Options& opt, long i) {
  return Rng(opt.seed * 0x9E3779B97F4A7C15ULL + static_cast<std::uint64_t>(i));
}

Order describe(const Options& opt, long i) {
  Rng r = order_rng(opt, i);
  Order o;
  o.index = i;
  char id[64];
  std::snprintf(id, sizeof id, "%03u-%07ld-%07u", 100 + static_cast<unsigned>(r.below(900)), i,
                static_cast<unsigned>(r.below(10000000)));
  o.id = id;
  std::uint64_t p = r.below(100);
  o.status = p < 70   ? "Shipped"
             : p < 80 ? "Canceled"
             : p < 88 ? "Unshipped"
             : p < 93 ? "Pending"
                      : "PartiallyShipped";
  o.business = r.below(100) < 15;
  o.items = 1 + static_cast<int>(r.below(3));
  return o;
}

// The per-row values that need more draws, from a second stream so describe() stays cheap.
Rng detail_rng(const Options& opt, long i) {
  return Rng(order_rng(opt, i).next() ^ 0xD1B54A32D192ED03ULL);
}

std::string person(Rng& r, long i) {
  return std::string(k_first[r.below(k_first.size())]) + " " + k_last[r.below(k_last.size())] +
         "-" + std::to_string(i);
}

} // namespace

std::uint64_t Rng::next() {
  std::uint64_t z = (m_state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

long long parse_date(const std::string& date) {
  std::tm tm{};
  int y = 0;
  int m = 0;
  int d = 0;
  char extra = 0;
  if (std::sscanf(date.c_str(), "%4d-%2d-%2d%c", &y, &m, &d, &extra) != 3 || m < 1 || m > 12 ||
      d < 1 || d > 31) {
    throw Error(Exit::usage, "'" + date + "' is not a date", "write dates as YYYY-MM-DD");
  }
  tm.tm_year = y - 1900;
  tm.tm_mon = m - 1;
  tm.tm_mday = d;
  return static_cast<long long>(timegm(&tm));
}

void create_schema(db::Session& session, const std::string& schema_sql) {
  session.transact([&](db::Transaction& tx) { tx.exec(schema_sql); });
}

Counts load(db::Session& session, const Options& opt) {
  if (opt.to_epoch <= opt.from_epoch) {
    throw Error(Exit::usage, "the date range is empty", "give --from earlier than --to");
  }
  const long long span = opt.to_epoch - opt.from_epoch;
  const long end = opt.first_index + opt.orders;
  using Emit = std::function<void(std::string&, const Order&, Rng&)>;
  // One table's pass: `emit` appends the order's rows (zero or more, '\n' between them).
  auto pass = [&](db::Transaction& tx, const std::string& target, const Emit& emit) {
    long i = opt.first_index;
    return tx.copy_in(target, [&](std::string& chunk) {
      while (i < end) {
        Order o = describe(opt, i);
        Rng r = detail_rng(opt, i);
        ++i;
        emit(chunk, o, r);
        if (!chunk.empty()) {
          return true;
        }
      }
      return false;
    });
  };
  auto new_row = [](std::string& chunk) {
    if (!chunk.empty()) {
      chunk += '\n';
    }
    return std::string{};
  };

  Counts counts;
  session.transact([&](db::Transaction& tx) {
    counts.orders =
        pass(tx,
             "orders (amazon_order_id, seller_id, marketplace_id, purchase_date, last_update_date, "
             "order_status, shipped_at, is_business_order, buyer_email, buyer_name)",
             [&](std::string& line, const Order& o, Rng& r) {
               // Orders arrive in time order, as a seller app pulls them: the table's
               // physical order follows the purchase date, as it does in production.
               long long step = std::max(1LL, span / std::max(1L, opt.orders));
               long long purchase =
                   opt.from_epoch + (o.index - opt.first_index) * span / std::max(1L, opt.orders) +
                   static_cast<long long>(r.below(static_cast<std::uint64_t>(step)));
               bool shipped = o.status == "Shipped" || o.status == "PartiallyShipped";
               long long ship = purchase + 3600 * (6 + static_cast<long long>(r.below(96)));
               long long update =
                   shipped ? ship : purchase + 3600 * (1 + static_cast<long long>(r.below(72)));
               field(line, o.id);
               field(line, std::string(k_sellers[static_cast<size_t>(o.index) % k_sellers.size()]));
               field(line, std::string("ATVPDKIKX0DER"));
               field(line, iso(purchase));
               field(line, iso(update));
               field(line, o.status);
               field(line, shipped ? db::Value(iso(ship)) : db::Value{});
               field(line, std::string(o.business ? "t" : "f"));
               field(line, "b" + std::to_string(o.index) + "x" + std::to_string(r.below(100000)) +
                               "@marketplace.amazon.example");
               field(line, person(r, o.index));
             });

    counts.addresses = pass(
        tx,
        "shipping_addresses (amazon_order_id, name, address_line1, address_line2, address_line3, "
        "city, county, district, state_or_region, postal_code, country_code, phone)",
        [&](std::string& line, const Order& o, Rng& r) {
          r.next(); // keep the address's draws apart from the order's
          field(line, o.id);
          field(line, person(r, o.index));
          field(line,
                std::to_string(100 + r.below(9900)) + " Larch Way " + std::to_string(o.index));
          field(line, r.below(4) == 0 ? db::Value("Apt " + std::to_string(1 + r.below(40)))
                                      : db::Value{});
          field(line, db::Value{});
          field(line, std::string(k_cities[r.below(k_cities.size())]));
          field(line, r.below(3) == 0 ? db::Value(std::string("Kings County")) : db::Value{});
          field(line, db::Value{});
          field(line, std::string(k_states[r.below(k_states.size())]));
          field(line, std::to_string(10000 + r.below(89999)));
          field(line, std::string("US"));
          field(line, "+1-555-" + std::to_string(1000000 + o.index % 9000000));
        });

    counts.tax_infos =
        pass(tx, "buyer_tax_info (tax_info_id, amazon_order_id, company_legal_name, taxing_region)",
             [&](std::string& line, const Order& o, Rng& r) {
               if (!o.business) {
                 return;
               }
               field(line, std::to_string(o.index + 1));
               field(line, o.id);
               field(line, std::string(k_last[r.below(k_last.size())]) + " Trading " +
                               std::to_string(o.index) + " LLC");
               field(line, std::string(k_states[r.below(k_states.size())]));
             });

    counts.tax_classifications = pass(tx, "buyer_tax_classifications (tax_info_id, name, value)",
                                      [&](std::string& chunk, const Order& o, Rng& r) {
                                        if (!o.business) {
                                          return;
                                        }
                                        std::string line = new_row(chunk);
                                        field(line, std::to_string(o.index + 1));
                                        field(line, std::string("VATNumber"));
                                        field(line, "US" + std::to_string(100000000 + o.index));
                                        chunk += line;
                                        if (r.below(2) == 0) {
                                          line = new_row(chunk);
                                          field(line, std::to_string(o.index + 1));
                                          field(line, std::string("BusinessType"));
                                          field(line, std::string("LLC"));
                                          chunk += line;
                                        }
                                      });

    counts.items = pass(
        tx,
        "order_items (order_item_id, amazon_order_id, asin, seller_sku, title, quantity, "
        "item_price, currency)",
        [&](std::string& chunk, const Order& o, Rng& r) {
          for (int k = 0; k < o.items; ++k) {
            std::string line = new_row(chunk);
            size_t t = r.below(k_titles.size());
            field(line, o.id + "-" + std::to_string(k + 1));
            field(line, o.id);
            field(line, "B0" + std::to_string(10000000 + t));
            field(line, "SKU-" + std::to_string(t));
            field(line, std::string(k_titles[t]));
            field(line, std::to_string(1 + r.below(4)));
            field(line, std::to_string(3 + r.below(200)) + "." + std::to_string(10 + r.below(90)));
            field(line, std::string("USD"));
            chunk += line;
          }
        });
  });
  // copy_in counts rows; a chunk of several lines is several rows.
  return counts;
}

} // namespace lethe::sample
