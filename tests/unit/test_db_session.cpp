#include "worker/db/session.hpp"
#include "worker/settings/settings.hpp"

#include <catch2/catch.hpp>

using namespace lethe;

namespace {

Exit dsn_error(const std::string& dsn) {
  settings::Database db;
  db.dsn = dsn;
  db.where = "t.toml:1:1";
  try {
    db::validate_dsn(db);
  } catch (const Error& e) {
    CHECK(e.where() == "t.toml:1:1");
    CHECK_FALSE(e.hint().empty());
    return e.code();
  }
  return Exit::ok;
}

} // namespace

TEST_CASE("validate_dsn: anything weaker than verify-full is a configuration error") {
  CHECK(dsn_error("host=db sslmode=disable") == Exit::config);
  CHECK(dsn_error("host=db sslmode=prefer") == Exit::config);
  CHECK(dsn_error("host=db sslmode=require") == Exit::config);
  CHECK(dsn_error("host=db sslmode=verify-ca") == Exit::config);
  CHECK(dsn_error("postgresql://db/orders?sslmode=require") == Exit::config);
  CHECK(dsn_error("host=db sslmode=verify-full") == Exit::ok);
  CHECK(dsn_error("host=db dbname=orders") == Exit::ok);
  CHECK(dsn_error("postgresql://lethe@db:5432/orders") == Exit::ok);
}

TEST_CASE("validate_dsn: passwords, Unix sockets and a missing host are refused") {
  CHECK(dsn_error("host=db password=secret") == Exit::config);
  CHECK(dsn_error("postgresql://u:secret@db/orders") == Exit::config);
  CHECK(dsn_error("host=/var/run/postgresql") == Exit::config);
  CHECK(dsn_error("host=db,/tmp") == Exit::config);
  CHECK(dsn_error("dbname=orders") == Exit::config);
  CHECK(dsn_error("host=db sslrootcert=/x.pem") == Exit::config);
  CHECK(dsn_error("host='unterminated") == Exit::config);
}

TEST_CASE("redact_server_message: values quoted after a colon are hidden, DETAIL dropped") {
  CHECK(
      db::redact_server_message("ERROR:  invalid input syntax for type integer: \"Ada Quill\"\n") ==
      "invalid input syntax for type integer: \"…\"");
  CHECK(db::redact_server_message("ERROR:  duplicate key value violates unique constraint \"k\"\n"
                                  "DETAIL:  Key (email)=(a@b.example) already exists.\n") ==
        "duplicate key value violates unique constraint \"k\"");
  CHECK(db::redact_server_message("ERROR:  relation \"orders\" does not exist") ==
        "relation \"orders\" does not exist");
}

TEST_CASE("describe_connection_failure: every host attempt libpq made, its advice dropped") {
  // libpq 15's text when "localhost" is ::1 and 127.0.0.1 and only the second is listening.
  std::string both = "connection to server at \"localhost\" (::1), port 5433 failed: Connection "
                     "refused\n\tIs the server running on that host and accepting TCP/IP "
                     "connections?\nconnection to server at \"localhost\" (127.0.0.1), port 5433 "
                     "failed: server does not support SSL, but SSL was required\n";
  CHECK(db::describe_connection_failure(both) ==
        "connection to server at \"localhost\" (::1), port 5433 failed: Connection refused; "
        "connection to server at \"localhost\" (127.0.0.1), port 5433 failed: server does not "
        "support SSL, but SSL was required");
  CHECK(db::describe_connection_failure("could not translate host name \"db\" to address\n") ==
        "could not translate host name \"db\" to address");
}

TEST_CASE("quote_ident and quote_literal: schema-qualified names and embedded quotes") {
  CHECK(db::quote_ident("public.orders") == "\"public\".\"orders\"");
  CHECK(db::quote_ident("we\"ird") == "\"we\"\"ird\"");
  CHECK(db::quote_literal("it's") == "'it''s'");
}

TEST_CASE("copy_field: COPY text escaping and NULL") {
  std::string line;
  db::copy_field(line, std::string("a\tb\\c\nd"));
  CHECK(line == "a\\tb\\\\c\\nd");
  line.clear();
  db::copy_field(line, std::nullopt);
  CHECK(line == "\\N");
}
