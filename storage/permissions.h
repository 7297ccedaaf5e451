// Roles and runtime permission overrides (PROTOCOL.md 3.3), decided deterministically from
// a connection's roles and its grant/revoke history, so every node decides the same.
//
// Roles understood (others are kept but grant nothing):
//   webpubsub.joinLeaveGroup            join/leave any group
//   webpubsub.sendToGroup               publish to any group
//   webpubsub.joinLeaveGroup.<group>    exactly <group> (the rest of the string, dots included)
//   webpubsub.sendToGroup.<group>       exactly <group>
//   webpubsub.joinLeaveGroups.<pattern> groups matching the glob pattern
//   webpubsub.sendToGroups.<pattern>    groups matching the glob pattern
// Glob: '?' one char except '.', '*' zero or more chars except '.', '**' zero or more of any
// char, '\' escapes '\', '*', '?'; at most five '*' in a pattern (an invalid pattern grants
// nothing).
//
// Runtime overrides, applied in log order:
//   Grant(p, g)   -> g allowed for p (and no longer revoked)
//   Grant(p, all) -> every group allowed for p; clears revokes and deny-all
//   Revoke(p, g)  -> g denied for p even if a role or a wildcard grant allows it
//   Revoke(p, all)-> every runtime grant of p removed and p denied for all groups until
//                    granted again
// Allowed(p, g): revoked g -> no; granted g or granted-all -> yes; deny-all -> no;
// otherwise the roles decide. Allowed(p, all) (no target): !deny-all && (granted-all ||
// a role granting p for any group).
//
// Thread-safety: plain values; the view mutates them only on its applier thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace hubcast::storage {

enum class Permission { kSendToGroup = 0, kJoinLeaveGroup = 1 };

// "sendToGroup" / "joinLeaveGroup" (case-insensitive) as used in REST paths.
std::optional<Permission> ParsePermission(std::string_view text);
const char* PermissionName(Permission p);

// True if name matches the glob pattern (syntax above). Invalid patterns match nothing.
bool GlobMatch(std::string_view pattern, std::string_view name);
bool IsValidGlob(std::string_view pattern);

class PermissionSet {
 public:
  PermissionSet() = default;
  explicit PermissionSet(const std::vector<std::string>& roles);
  PermissionSet(const PermissionSet& other);
  PermissionSet& operator=(const PermissionSet& other);
  PermissionSet(PermissionSet&&) noexcept = default;
  PermissionSet& operator=(PermissionSet&&) noexcept = default;
  ~PermissionSet();

  void Grant(Permission p, const std::optional<std::string>& group);
  void Revoke(Permission p, const std::optional<std::string>& group);
  bool Allowed(Permission p, const std::optional<std::string>& group) const;

  const std::vector<std::string>& roles() const { return roles_; }

  // The runtime grant/revoke state of one permission (what roles do not determine), so the
  // store can persist it and put it back.
  struct Overrides {
    bool granted_all = false;
    bool deny_all = false;
    std::set<std::string> granted;
    std::set<std::string> revoked;
  };
  Overrides overrides(Permission p) const;
  void RestoreOverrides(Permission p, Overrides o);

 private:
  // Every connection has one (in the view's record): the flags stay inline, and the group
  // names (from group roles, patterns or single-group grants and revokes) live out of line,
  // allocated only for a connection that has any. Most connections have none: their whole
  // permission state is the roles and a byte.
  enum Flag : uint8_t { kRoleAny = 1, kGrantedAll = 2, kDenyAll = 4 };
  struct Groups {
    std::set<std::string> role_literal;
    std::vector<std::string> role_patterns;
    std::set<std::string> granted;
    std::set<std::string> revoked;
  };
  bool Has(Permission p, Flag f) const { return (flags_[static_cast<int>(p)] & f) != 0; }
  void Set(Permission p, Flag f, bool on);
  const Groups* GroupsOf(Permission p) const { return groups_[static_cast<int>(p)].get(); }
  Groups& MutableGroups(Permission p);

  std::vector<std::string> roles_;
  uint8_t flags_[2] = {0, 0};
  std::unique_ptr<Groups> groups_[2];
};

}  // namespace hubcast::storage
