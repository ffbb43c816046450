#include "frontends/http/multipart.h"

#include <algorithm>
#include <cctype>

namespace braid {
namespace {

std::string Lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return out;
}

// The value of `key="..."` (or key=token) in a header value.
std::string Parameter(std::string_view header, std::string_view key) {
  std::string lower = Lower(header);
  std::string needle = std::string(key) + "=";
  std::size_t at = 0;
  while ((at = lower.find(needle, at)) != std::string::npos) {
    if (at == 0 || lower[at - 1] == ';' || lower[at - 1] == ' ') break;
    ++at;
  }
  if (at == std::string::npos) return "";
  std::size_t start = at + needle.size();
  if (start < header.size() && header[start] == '"') {
    std::size_t end = header.find('"', start + 1);
    return std::string(header.substr(
        start + 1, end == std::string_view::npos ? std::string_view::npos : end - start - 1));
  }
  std::size_t end = header.find(';', start);
  std::string value(
      header.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start));
  while (!value.empty() && std::isspace(static_cast<unsigned char>(value.back()))) value.pop_back();
  return value;
}

}  // namespace

Result<std::vector<FormPart>> ParseMultipart(std::string_view content_type, std::string_view body,
                                             std::size_t max_parts) {
  if (!Lower(content_type).starts_with("multipart/form-data")) {
    return InvalidArgument("expected Content-Type multipart/form-data, not '{}'", content_type);
  }
  const std::string boundary = Parameter(content_type, "boundary");
  if (boundary.empty() || boundary.size() > 200)
    return InvalidArgument("multipart/form-data without a valid boundary");
  const std::string delimiter = "--" + boundary;
  std::vector<FormPart> parts;
  std::size_t position = body.find(delimiter);
  if (position == std::string_view::npos)
    return InvalidArgument("multipart body holds no boundary");
  while (true) {
    position += delimiter.size();
    if (body.substr(position, 2) == "--") return parts;  // closing delimiter
    if (body.substr(position, 2) != "\r\n")
      return InvalidArgument("malformed multipart delimiter line");
    position += 2;
    const std::size_t headers_end = body.find("\r\n\r\n", position);
    if (headers_end == std::string_view::npos)
      return InvalidArgument("multipart part without a header end");
    FormPart part;
    std::string_view headers = body.substr(position, headers_end - position);
    while (!headers.empty()) {
      std::size_t eol = headers.find("\r\n");
      std::string_view line = headers.substr(0, eol);
      headers = eol == std::string_view::npos ? std::string_view() : headers.substr(eol + 2);
      std::size_t colon = line.find(':');
      if (colon == std::string_view::npos)
        return InvalidArgument("malformed multipart header line");
      std::string name = Lower(line.substr(0, colon));
      std::string_view value = line.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
      if (name == "content-disposition") {
        part.name = Parameter(value, "name");
        part.filename = Parameter(value, "filename");
      } else if (name == "content-type") {
        part.content_type = std::string(value);
      }
    }
    const std::size_t data_start = headers_end + 4;
    const std::size_t next = body.find("\r\n" + delimiter, data_start);
    if (next == std::string_view::npos)
      return InvalidArgument("multipart part '{}' is not terminated", part.name);
    part.data = body.substr(data_start, next - data_start);
    if (part.name.empty()) return InvalidArgument("multipart part without a name");
    parts.push_back(std::move(part));
    if (parts.size() > max_parts) return InvalidArgument("more than {} multipart parts", max_parts);
    position = next + 2;
  }
}

}  // namespace braid
