// Random UUID v4 text (session ids, batch ids, generated server ids).
#pragma once

#include <string>

namespace streamtally {

std::string make_uuid_v4();
bool looks_like_uuid(const std::string&);

}  // namespace streamtally
