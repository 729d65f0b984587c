#include "engine/core/error.h"

namespace uv::detail {

void throw_error(bool user, const char* expr, const char* file, int line, const std::string& msg) {
  if (user) throw UserError(msg);  // the message names what to fix; file:line would be noise
  std::ostringstream full;
  full << msg << " [internal check `" << expr << "` failed at " << file << ":" << line << "]";
  throw Error(full.str());
}

}  // namespace uv::detail
