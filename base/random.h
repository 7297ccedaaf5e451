// Random identifiers from the OS CSPRNG (getrandom): connection ids, log epochs, keys.
// Thread-safe.
#pragma once

#include <cstdint>
#include <string>

namespace hubcast {

// n random bytes as 2n lower-case hex characters (connection ids use 16 bytes: a 32-hex
// GUID without dashes, like the emulator's).
std::string RandomHex(size_t bytes);
uint64_t RandomU64();

}  // namespace hubcast
