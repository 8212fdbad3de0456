// The only door to PostgreSQL: a TLS-verified session (C9) and the few operations lethe needs.
// libpqxx and libpq are used only inside worker/db, so a move to libpqxx 7 touches one folder.
#pragma once

#include "worker/settings/settings.hpp"
#include "worker/util/error.hpp"
#include "worker/util/secret.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lethe::db {

using Value = std::optional<std::string>;
using Params = std::vector<Value>;

// A database failure. `what()` holds the server's primary message with quoted values redacted,
// never a DETAIL line (those can quote row contents).
class DbError : public Error {
public:
  DbError(Exit code, std::string message, std::string sqlstate, std::string hint = {})
      : Error(code, std::move(message), std::move(hint)), m_sqlstate(std::move(sqlstate)) {}
  const std::string& sqlstate() const noexcept { return m_sqlstate; }
  bool lock_timeout() const noexcept { return m_sqlstate == "55P03"; }

private:
  std::string m_sqlstate;
};

// The connection was refused for lack of verified TLS (plaintext server, wrong certificate).
class TlsRefused : public Error {
public:
  using Error::Error;
};

// A result held in memory: text values, NULL as nullopt.
class Rows {
public:
  size_t size() const noexcept { return m_rows.size(); }
  bool empty() const noexcept { return m_rows.empty(); }
  size_t affected() const noexcept { return m_affected; }
  const Value& at(size_t row, size_t col) const { return m_rows.at(row).at(col); }
  // The value as text; throws Error(internal) when it is NULL.
  const std::string& text(size_t row, size_t col) const;
  long long integer(size_t row, size_t col) const;
  const std::vector<std::string>& columns() const noexcept { return m_columns; }

  std::vector<std::string> m_columns;
  std::vector<std::vector<Value>> m_rows;
  size_t m_affected = 0;
};

class Session;

// One transaction; rolled back unless `commit()` is called.
class Transaction {
public:
  explicit Transaction(Session& session);
  ~Transaction();
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  Rows exec(std::string_view sql, const Params& params = {});

  // Streams lines into `target` ("table (col, …)") with COPY FROM STDIN in text format. `next`
  // fills one line (fields escaped with copy_field, tab-separated, no newline) and returns false
  // at the end. Returns the rows copied.
  size_t copy_in(const std::string& target, const std::function<bool(std::string&)>& next);

  // Runs `copy_sql` ("COPY … FROM STDIN …") and sends each chunk `next` fills, verbatim, until
  // it returns false. Returns the rows copied.
  size_t copy_in_data(const std::string& copy_sql, const std::function<bool(std::string&)>& next);

  // Runs `copy_sql` ("COPY (…) TO STDOUT …") and hands each chunk of output to `sink`.
  // Returns the rows copied.
  size_t copy_out(const std::string& copy_sql, const std::function<void(std::string_view)>& sink);

  void commit();

private:
  Session& m_session;
  struct Impl;
  std::unique_ptr<Impl> m_impl;
};

class Session {
public:
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Runs `sql` outside an explicit transaction (autocommit), e.g. VACUUM.
  Rows exec(std::string_view sql, const Params& params = {});

  // Runs `work` in a transaction and commits it.
  void transact(const std::function<void(Transaction&)>& work);

  // TLS protocol and cipher in use, e.g. "TLSv1.3 TLS_AES_256_GCM_SHA384".
  std::string tls_description() const;
  // "host:port/dbname" — no user, no password.
  std::string endpoint() const;
  // The libpq connection string this session keeps (libpqxx holds it for reconnects); the
  // password went to libpq beside it and is never part of it.
  std::string connection_string() const;

  struct Impl;
  std::unique_ptr<Impl> m_impl;

private:
  friend std::unique_ptr<Session> connect(const settings::Settings& s);
  Session();
};

// `db`'s connection string with its database replaced by `dbname` (options kept, quoted).
std::string dsn_with_dbname(const settings::Database& db, const std::string& dbname);
// Whether `name` is a database name lethe creates or targets by name: lower-case letters, digits
// and _, at most 63 (no quoting needed anywhere).
bool is_database_name(const std::string& name);
// The database `db`'s connection string names (empty: libpq's default, the user name).
std::string dbname_of(const settings::Database& db);

// Checks database.dsn without connecting: no password, sslmode absent or verify-full, no
// Unix-socket host, no sslrootcert (that has its own key). Throws Error(config).
void validate_dsn(const settings::Database& db);

// The password to use: from password_file, else the systemd credential, else empty.
util::Secret read_password(const settings::Database& db);

// Opens a session with sslmode=verify-full; refuses (TlsRefused, exit 69) a server that does
// not offer verified TLS, before the first query. Sets timezone UTC and the configured timeouts.
std::unique_ptr<Session> connect(const settings::Settings& s);

// Appends `v` to `line` escaped for COPY text format (\\N for NULL).
void copy_field(std::string& line, const Value& v);

// A PostgreSQL array literal of text values ('{"a","b"}'), for `= ANY($1::type[])`.
std::string array_literal(const std::vector<Value>& values);

// Quotes a (possibly schema-qualified) identifier for SQL: public.orders -> "public"."orders".
std::string quote_ident(std::string_view name);
// Quotes a string literal for SQL text (used only for lethe's own constants in generated SQL).
std::string quote_literal(std::string_view value);

// The first line of a server message with values quoted after ": " replaced by "…".
std::string redact_server_message(std::string_view message);

// libpq's connection failure `message` with every host attempt it made (one per address
// "localhost" resolved to, say ::1 then 127.0.0.1), joined by "; ": the first alone can hide
// the one that matters. Libpq's own advice lines ("Is the server running…") are dropped.
std::string describe_connection_failure(std::string_view message);

} // namespace lethe::db
