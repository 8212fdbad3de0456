// Internal to worker/db: how libpq and libpqxx failures become lethe's errors, with lethe's own
// words for a SQLSTATE and never the server's text (it can quote row data).
#pragma once

#include "worker/db/session.hpp"

#include <libpq-fe.h>
#include <string>

namespace lethe::db {

// The exit code of a SQLSTATE: temporary (retry), permission, config or internal.
Exit classify(const std::string& state);

// "database error 23514 (a constraint refused the change) on public.t, column c, constraint k":
// names from the error's fields (of `r`, when there is one), never from its text.
DbError server_error(const std::string& state, const PGresult* r);

// The connection went away: a temporary error whose retry is safe.
DbError connection_lost();

// Turns the exception in flight into an Error. `session` is the connection's raw handle when
// it was open (so a broken connection means it was lost), null while connecting.
[[noreturn]] void rethrow_db_error(PGconn* session);

} // namespace lethe::db
