#include "storage/permissions.h"

#include <cctype>
#include <cstddef>
#include <utility>

namespace hubcast::storage {
namespace {

constexpr int kMaxStars = 5;

constexpr std::string_view kJoinLeaveAny = "webpubsub.joinLeaveGroup";
constexpr std::string_view kSendAny = "webpubsub.sendToGroup";
constexpr std::string_view kJoinLeaveLiteral = "webpubsub.joinLeaveGroup.";
constexpr std::string_view kSendLiteral = "webpubsub.sendToGroup.";
constexpr std::string_view kJoinLeavePattern = "webpubsub.joinLeaveGroups.";
constexpr std::string_view kSendPattern = "webpubsub.sendToGroups.";

// One unit of a compiled glob. PermissionSet keeps patterns as their source text, so they are
// compiled again on each match; that is linear in the pattern and cheap next to a publish.
struct GlobToken {
  enum class Kind { kLiteral, kOneChar, kSegmentStar, kAnyStar };
  Kind kind;
  char literal = 0;
};

// Splits pattern into tokens; false if it is invalid (a dangling or unknown escape, or more
// than kMaxStars unescaped stars). A run of three or more stars reads as "**" followed by
// "*", which matches exactly what "**" matches; every star still counts toward the limit.
bool CompileGlob(std::string_view pattern, std::vector<GlobToken>* tokens) {
  if (pattern.empty()) return false;  // Could only match the empty name, which is not a group.
  int stars = 0;
  for (size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '\\') {
      // Only the three documented escapes exist; accepting others would make a future
      // meaning for them a silent change in what old tokens grant.
      if (i + 1 == pattern.size()) return false;
      const char next = pattern[i + 1];
      if (next != '\\' && next != '*' && next != '?') return false;
      tokens->push_back({GlobToken::Kind::kLiteral, next});
      ++i;
    } else if (c == '?') {
      tokens->push_back({GlobToken::Kind::kOneChar});
    } else if (c == '*') {
      if (i + 1 < pattern.size() && pattern[i + 1] == '*') {
        stars += 2;
        tokens->push_back({GlobToken::Kind::kAnyStar});
        ++i;
      } else {
        stars += 1;
        tokens->push_back({GlobToken::Kind::kSegmentStar});
      }
    } else {
      tokens->push_back({GlobToken::Kind::kLiteral, c});
    }
    if (stars > kMaxStars) return false;
  }
  return true;
}

// Dynamic programming over (token, prefix length) instead of backtracking, so a hostile
// pattern such as "*a*a*a*a*a" against a long name costs O(tokens * name) time, not more.
bool MatchTokens(const std::vector<GlobToken>& tokens, std::string_view name) {
  const size_t n = name.size();
  // reach[j]: the tokens consumed so far can match name[0, j).
  std::vector<char> reach(n + 1, 0);
  std::vector<char> next(n + 1, 0);
  reach[0] = 1;
  for (const GlobToken& token : tokens) {
    next.assign(n + 1, 0);
    switch (token.kind) {
      case GlobToken::Kind::kLiteral:
        for (size_t j = 0; j < n; ++j) next[j + 1] = reach[j] && name[j] == token.literal;
        break;
      case GlobToken::Kind::kOneChar:
        for (size_t j = 0; j < n; ++j) next[j + 1] = reach[j] && name[j] != '.';
        break;
      case GlobToken::Kind::kSegmentStar:
        next[0] = reach[0];
        for (size_t j = 1; j <= n; ++j) {
          next[j] = reach[j] || (next[j - 1] && name[j - 1] != '.');
        }
        break;
      case GlobToken::Kind::kAnyStar:
        next[0] = reach[0];
        for (size_t j = 1; j <= n; ++j) next[j] = reach[j] || next[j - 1];
        break;
    }
    std::swap(reach, next);
  }
  return reach[n] != 0;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

bool ConsumePrefix(std::string_view* s, std::string_view prefix) {
  if (s->substr(0, prefix.size()) != prefix) return false;
  s->remove_prefix(prefix.size());
  return true;
}

}  // namespace

std::optional<Permission> ParsePermission(std::string_view text) {
  if (EqualsIgnoreCase(text, "sendToGroup")) return Permission::kSendToGroup;
  if (EqualsIgnoreCase(text, "joinLeaveGroup")) return Permission::kJoinLeaveGroup;
  return std::nullopt;
}

const char* PermissionName(Permission p) {
  switch (p) {
    case Permission::kSendToGroup:
      return "sendToGroup";
    case Permission::kJoinLeaveGroup:
      return "joinLeaveGroup";
  }
  return "unknown";
}

bool IsValidGlob(std::string_view pattern) {
  std::vector<GlobToken> tokens;
  return CompileGlob(pattern, &tokens);
}

bool GlobMatch(std::string_view pattern, std::string_view name) {
  std::vector<GlobToken> tokens;
  if (!CompileGlob(pattern, &tokens)) return false;
  return MatchTokens(tokens, name);
}

PermissionSet::PermissionSet(const std::vector<std::string>& roles) : roles_(roles) {
  for (const std::string& role : roles_) {
    std::string_view rest = role;
    // Role names are matched exactly (case-sensitively), as the service does; the plural
    // pattern prefixes cannot collide with the literal ones because they differ at "s" vs ".".
    if (rest == kSendAny) {
      Set(Permission::kSendToGroup, kRoleAny, true);
    } else if (rest == kJoinLeaveAny) {
      Set(Permission::kJoinLeaveGroup, kRoleAny, true);
    } else if (ConsumePrefix(&rest, kSendLiteral)) {
      MutableGroups(Permission::kSendToGroup).role_literal.emplace(rest);
    } else if (ConsumePrefix(&rest, kJoinLeaveLiteral)) {
      MutableGroups(Permission::kJoinLeaveGroup).role_literal.emplace(rest);
    } else if (ConsumePrefix(&rest, kSendPattern)) {
      // Invalid patterns are dropped here once so Allowed never has to reject them again.
      if (IsValidGlob(rest))
        MutableGroups(Permission::kSendToGroup).role_patterns.emplace_back(rest);
    } else if (ConsumePrefix(&rest, kJoinLeavePattern)) {
      if (IsValidGlob(rest)) {
        MutableGroups(Permission::kJoinLeaveGroup).role_patterns.emplace_back(rest);
      }
    }
    // Anything else is kept in roles_ (it is reported upstream) but grants nothing.
  }
}

PermissionSet::PermissionSet(const PermissionSet& other) { *this = other; }

PermissionSet& PermissionSet::operator=(const PermissionSet& other) {
  if (this == &other) return *this;
  roles_ = other.roles_;
  for (int p = 0; p < 2; ++p) {
    flags_[p] = other.flags_[p];
    groups_[p] = other.groups_[p] ? std::make_unique<Groups>(*other.groups_[p]) : nullptr;
  }
  return *this;
}

PermissionSet::~PermissionSet() = default;

void PermissionSet::Set(Permission p, Flag f, bool on) {
  uint8_t& flags = flags_[static_cast<int>(p)];
  flags = on ? (flags | f) : (flags & ~f);
}

PermissionSet::Groups& PermissionSet::MutableGroups(Permission p) {
  std::unique_ptr<Groups>& g = groups_[static_cast<int>(p)];
  if (!g) g = std::make_unique<Groups>();
  return *g;
}

PermissionSet::Overrides PermissionSet::overrides(Permission p) const {
  Overrides o{Has(p, kGrantedAll), Has(p, kDenyAll), {}, {}};
  if (const Groups* g = GroupsOf(p)) {
    o.granted = g->granted;
    o.revoked = g->revoked;
  }
  return o;
}

void PermissionSet::RestoreOverrides(Permission p, Overrides o) {
  Set(p, kGrantedAll, o.granted_all);
  Set(p, kDenyAll, o.deny_all);
  if (o.granted.empty() && o.revoked.empty() && !GroupsOf(p)) return;
  Groups& g = MutableGroups(p);
  g.granted = std::move(o.granted);
  g.revoked = std::move(o.revoked);
}

void PermissionSet::Grant(Permission p, const std::optional<std::string>& group) {
  if (!group) {
    Set(p, kGrantedAll, true);
    Set(p, kDenyAll, false);
    if (groups_[static_cast<int>(p)]) groups_[static_cast<int>(p)]->revoked.clear();
    return;
  }
  Groups& g = MutableGroups(p);
  g.revoked.erase(*group);
  g.granted.insert(*group);
}

void PermissionSet::Revoke(Permission p, const std::optional<std::string>& group) {
  if (!group) {
    Set(p, kGrantedAll, false);
    Set(p, kDenyAll, true);
    // Revokes of single groups are subsumed by deny-all, and every way out of deny-all
    // (Grant all, or Grant of one group) clears the relevant revokes anyway.
    if (groups_[static_cast<int>(p)]) {
      groups_[static_cast<int>(p)]->granted.clear();
      groups_[static_cast<int>(p)]->revoked.clear();
    }
    return;
  }
  Groups& g = MutableGroups(p);
  g.granted.erase(*group);
  g.revoked.insert(*group);
}

bool PermissionSet::Allowed(Permission p, const std::optional<std::string>& group) const {
  if (!group) return !Has(p, kDenyAll) && (Has(p, kGrantedAll) || Has(p, kRoleAny));
  const Groups* g = GroupsOf(p);
  if (g && g->revoked.count(*group) > 0) return false;
  if (Has(p, kGrantedAll) || (g && g->granted.count(*group) > 0)) return true;
  if (Has(p, kDenyAll)) return false;
  if (Has(p, kRoleAny)) return true;
  if (!g) return false;
  if (g->role_literal.count(*group) > 0) return true;
  for (const std::string& pattern : g->role_patterns) {
    if (GlobMatch(pattern, *group)) return true;
  }
  return false;
}

}  // namespace hubcast::storage
