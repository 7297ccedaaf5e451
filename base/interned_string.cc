#include "base/interned_string.h"

#include <mutex>
#include <unordered_map>

namespace hubcast {
namespace {

// text -> the shared string (keyed by a view of the string itself). An entry goes when its
// last handle does; a handle released while another thread interns the same text anew
// leaves the new entry alone.
struct Table {
  std::mutex mu;
  std::unordered_map<std::string_view, std::weak_ptr<const std::string>> texts;
};

Table& TheTable() {
  static Table* table = new Table;  // never destroyed: handles may outlive static destruction
  return *table;
}

}  // namespace

InternedString::InternedString(std::string_view text) {
  if (text.empty()) return;
  Table& t = TheTable();
  std::lock_guard lock(t.mu);
  auto it = t.texts.find(text);
  if (it != t.texts.end()) {
    text_ = it->second.lock();
    if (text_) return;
    t.texts.erase(it);  // its last handle is being released right now
  }
  const std::string* owned = new std::string(text);
  text_ = std::shared_ptr<const std::string>(owned, [](const std::string* s) {
    Table& table = TheTable();
    {
      std::lock_guard lock(table.mu);
      auto entry = table.texts.find(*s);
      if (entry != table.texts.end() && entry->first.data() == s->data()) {
        table.texts.erase(entry);
      }
    }
    delete s;
  });
  t.texts.emplace(*owned, text_);
}

const std::string& InternedString::Empty() {
  static const std::string empty;
  return empty;
}

size_t InternedString::TableSize() {
  Table& t = TheTable();
  std::lock_guard lock(t.mu);
  return t.texts.size();
}

}  // namespace hubcast
