#include "train/data_cache.h"

#include <sys/stat.h>

#include <ATen/CPUGeneratorImpl.h>

#include "core/compare.h"
#include "core/error.h"
#include "core/fs.h"
#include "io/safetensors.h"

namespace sanastream::train {

using json = nlohmann::json;

namespace {

std::string dir_of(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

void check_prompt(const at::Tensor& embeds, const at::Tensor& mask, const std::string& what) {
  SS_CHECK(embeds.dim() == 2 && mask.dim() == 1 && mask.size(0) == embeds.size(0),
           "{}: expected embeddings [L, Cc] and a mask [L], got {} and {}", what, shape_str(embeds.sizes()),
           shape_str(mask.sizes()));
}

}  // namespace

void make_directories(const std::string& dir) {
  for (size_t slash = dir.find('/', 1); slash != std::string::npos; slash = dir.find('/', slash + 1))
    ::mkdir(dir.substr(0, slash).c_str(), 0755);
  SS_CHECK(::mkdir(dir.c_str(), 0755) == 0 || is_directory(dir), "cannot create directory '{}'", dir);
}

std::vector<ManifestRow> read_manifest(const std::string& path) {
  SS_CHECK(path_exists(path), "manifest '{}' does not exist", path);
  const std::string text = read_text_file(path), base = dir_of(path);
  std::vector<ManifestRow> rows;
  size_t begin = 0;
  for (int line = 1; begin < text.size(); ++line) {
    size_t end = text.find('\n', begin);
    if (end == std::string::npos) end = text.size();
    const std::string s = text.substr(begin, end - begin);
    begin = end + 1;
    if (s.find_first_not_of(" \t\r") == std::string::npos) continue;
    json j;
    try {
      j = json::parse(s);
    } catch (const json::exception& e) {
      SS_FAIL("{}:{}: not valid JSON: {}", path, line, e.what());
    }
    SS_CHECK(j.is_object(), "{}:{}: expected an object, got {}", path, line, j.dump());
    auto text_of = [&](const char* key, bool required) -> std::string {
      if (!j.contains(key)) {
        SS_CHECK(!required, "{}:{}: {}: required key missing", path, line, key);
        return "";
      }
      SS_CHECK(j[key].is_string() && !j[key].get<std::string>().empty(),
               "{}:{}: {}: expected a non-empty string, got {}", path, line, key, j[key].dump());
      return j[key].get<std::string>();
    };
    for (const auto& [k, _] : j.items())
      SS_CHECK(k == "source_video" || k == "target_video" || k == "prompt" || k == "reverse_prompt" || k == "start",
               "{}:{}: {}: unknown key (expected source_video, start, prompt, reverse_prompt, target_video)", path,
               line, k);
    auto resolve = [&](const std::string& p) { return p.empty() || p[0] == '/' ? p : base + "/" + p; };
    ManifestRow r;
    r.source_video = resolve(text_of("source_video", true));
    r.target_video = resolve(text_of("target_video", false));
    r.prompt = text_of("prompt", false);
    r.reverse_prompt = text_of("reverse_prompt", false);
    SS_CHECK(r.prompt.empty() == r.reverse_prompt.empty(), "{}:{}: expected prompt and reverse_prompt together", path,
             line);
    if (j.contains("start")) {
      SS_CHECK(j["start"].is_number() && j["start"].get<double>() >= 0,
               "{}:{}: start: expected seconds >= 0, got {}", path, line, j["start"].dump());
      r.start = j["start"].get<double>();
    }
    rows.push_back(std::move(r));
  }
  SS_CHECK(!rows.empty(), "{}: expected at least one row, got none", path);
  return rows;
}

DataCacheWriter::DataCacheWriter(std::string dir, CacheHeader header) : dir_(std::move(dir)), header_(header) {
  SS_CHECK(header_.frames >= 1 && (header_.kind == CacheKind::kFrames || (header_.frames - 1) % header_.temporal_ratio == 0),
           "data cache: expected 1 + {}k frames, got {}", header_.temporal_ratio, header_.frames);
  SS_CHECK(header_.width > 0 && header_.height > 0, "data cache: expected a frame size, got {}x{}", header_.width,
           header_.height);
  SS_CHECK(!path_exists(dir_ + "/index.json"), "data cache '{}' exists already (remove it first)", dir_);
  make_directories(dir_);
}

void DataCacheWriter::set_null_prompt(const at::Tensor& embeds, const at::Tensor& mask) {
  check_prompt(embeds, mask, "null prompt");
  io::save_safetensors(dir_ + "/null_prompt.safetensors",
                       {{"prompt.embeds", embeds.to(at::kCPU, at::kFloat).contiguous()},
                        {"prompt.mask", mask.to(at::kCPU, at::kLong).contiguous()}});
  has_null_ = true;
}

void DataCacheWriter::add(const CacheSample& s) {
  if (header_.kind == CacheKind::kFrames) {
    const std::vector<int64_t> want{header_.frames, header_.height, header_.width, 3};
    SS_CHECK(s.source.sizes().vec() == want && s.source.scalar_type() == at::kByte,
             "data cache: expected source frames {} uint8, got {}", shape_str(want), shape_str(s.source.sizes()));
  } else {
    const std::vector<int64_t> want{(header_.frames - 1) / header_.temporal_ratio + 1,
                                    header_.height / header_.spatial_ratio, header_.width / header_.spatial_ratio};
    SS_CHECK(s.source.dim() == 4 && s.source.sizes().slice(1).vec() == want &&
                 (s.source.scalar_type() == at::kFloat || s.source.scalar_type() == at::kHalf),
             "data cache: expected source latents [Cl, {}, {}, {}] fp32 or fp16, got {} {}", want[0], want[1], want[2],
             shape_str(s.source.sizes()), c10::toString(s.source.scalar_type()));
  }
  SS_CHECK(!s.target.defined() || s.target.sizes() == s.source.sizes(), "data cache: target {} differs from source {}",
           shape_str(s.target.sizes()), shape_str(s.source.sizes()));
  SS_CHECK(s.prompt_embeds.defined() == !s.prompt.empty() && s.reverse_embeds.defined() == !s.reverse_prompt.empty() &&
               s.prompt.empty() == s.reverse_prompt.empty(),
           "data cache: expected a prompt and a reverse prompt with their embeddings, or neither");
  io::TensorMap m{{"source", s.source.to(at::kCPU).contiguous()}};
  if (s.target.defined()) m["target"] = s.target.to(at::kCPU, s.source.scalar_type()).contiguous();
  if (!s.prompt.empty()) {
    check_prompt(s.prompt_embeds, s.prompt_mask, "prompt");
    check_prompt(s.reverse_embeds, s.reverse_mask, "reverse prompt");
    m["prompt.embeds"] = s.prompt_embeds.to(at::kCPU, at::kFloat).contiguous();
    m["prompt.mask"] = s.prompt_mask.to(at::kCPU, at::kLong).contiguous();
    m["reverse_prompt.embeds"] = s.reverse_embeds.to(at::kCPU, at::kFloat).contiguous();
    m["reverse_prompt.mask"] = s.reverse_mask.to(at::kCPU, at::kLong).contiguous();
  }
  const std::string file = fmt::format("{:06d}.safetensors", samples_.size());
  io::save_safetensors(dir_ + "/" + file, m);
  samples_.push_back(
      {{"file", file}, {"target", s.target.defined()}, {"prompt", s.prompt}, {"reverse_prompt", s.reverse_prompt}});
}

void DataCacheWriter::finish() {
  SS_CHECK(has_null_, "data cache: the null prompt was not set");
  SS_CHECK(!samples_.empty(), "data cache: no samples");
  json index = {{"format_version", kDataCacheVersion},
                {"kind", header_.kind == CacheKind::kFrames ? "frames" : "latents"},
                {"width", header_.width},
                {"height", header_.height},
                {"frames", header_.frames},
                {"samples", samples_}};
  if (!header_.package.empty()) index["package"] = header_.package;
  if (header_.kind == CacheKind::kLatents) {
    index["spatial_ratio"] = header_.spatial_ratio;
    index["temporal_ratio"] = header_.temporal_ratio;
  }
  write_text_file_atomic(dir_ + "/index.json", index.dump(1) + "\n");
}

DataCache::DataCache(std::string dir) : dir_(std::move(dir)) {
  const std::string index = dir_ + "/index.json";
  SS_CHECK(path_exists(index), "data cache '{}': no index.json (build one with `sanastream train-cache`)", dir_);
  json j;
  try {
    j = json::parse(read_text_file(index));
    SS_CHECK(j.at("format_version").get<int64_t>() == kDataCacheVersion, "{}: format_version: expected {}, got {}",
             index, kDataCacheVersion, j.at("format_version").dump());
    const std::string kind = j.at("kind").get<std::string>();
    SS_CHECK(kind == "frames" || kind == "latents", "{}: kind: expected frames or latents, got '{}'", index, kind);
    header_.kind = kind == "frames" ? CacheKind::kFrames : CacheKind::kLatents;
    header_.width = j.at("width").get<int64_t>();
    header_.height = j.at("height").get<int64_t>();
    header_.frames = j.at("frames").get<int64_t>();
    if (j.contains("package")) header_.package = j.at("package").get<std::string>();
    header_.spatial_ratio = j.value("spatial_ratio", header_.spatial_ratio);
    header_.temporal_ratio = j.value("temporal_ratio", header_.temporal_ratio);
    SS_CHECK(header_.spatial_ratio >= 1 && header_.temporal_ratio >= 1, "{}: expected ratios >= 1, got {} and {}",
             index, header_.spatial_ratio, header_.temporal_ratio);
    for (const auto& s : j.at("samples")) {
      files_.push_back(dir_ + "/" + s.at("file").get<std::string>());
      prompts_.emplace_back(s.value("prompt", std::string()), s.value("reverse_prompt", std::string()));
    }
  } catch (const json::exception& e) {
    SS_FAIL("{}: malformed index: {}", index, e.what());
  }
  SS_CHECK(!files_.empty(), "{}: expected at least one sample, got none", index);
  const io::TensorMap null = io::load_safetensors(dir_ + "/null_prompt.safetensors");
  null_embeds_ = null.at("prompt.embeds");
  null_mask_ = null.at("prompt.mask");
}

CacheSample DataCache::load(int64_t index) const {
  SS_CHECK(index >= 0 && index < size(), "data cache: sample {} of {}", index, size());
  const io::TensorMap m = io::load_safetensors(files_[index]);
  auto get = [&](const char* key) {
    auto it = m.find(key);
    SS_CHECK(it != m.end(), "{}: missing tensor '{}'", files_[index], key);
    return it->second;
  };
  CacheSample s;
  s.source = get("source");
  if (m.count("target")) s.target = m.at("target");
  s.prompt = prompts_[index].first;
  s.reverse_prompt = prompts_[index].second;
  if (!s.prompt.empty()) {
    s.prompt_embeds = get("prompt.embeds");
    s.prompt_mask = get("prompt.mask");
    s.reverse_embeds = get("reverse_prompt.embeds");
    s.reverse_mask = get("reverse_prompt.mask");
  }
  return s;
}

void write_random_latent_cache(const std::string& dir, const CacheHeader& header, int64_t samples,
                               int64_t latent_channels, int64_t caption_channels, int64_t caption_length,
                               uint64_t seed) {
  const int64_t sr = header.spatial_ratio;
  SS_CHECK(header.kind == CacheKind::kLatents && header.width % sr == 0 && header.height % sr == 0,
           "random cache: expected latents of a size of multiples of {}, got {}x{}", sr, header.width, header.height);
  SS_CHECK(samples >= 1 && latent_channels >= 1 && caption_channels >= 1 && caption_length >= 1,
           "random cache: expected positive counts, got {} samples, {} latent and {} caption channels, {} tokens",
           samples, latent_channels, caption_channels, caption_length);
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const auto f32 = at::TensorOptions().dtype(at::kFloat);
  const at::Tensor mask = (at::arange(caption_length, at::kLong) < (caption_length + 1) / 2).to(at::kLong);
  const std::vector<int64_t> latents{latent_channels, (header.frames - 1) / header.temporal_ratio + 1,
                                     header.height / sr, header.width / sr};
  DataCacheWriter writer(dir, header);
  writer.set_null_prompt(at::randn({caption_length, caption_channels}, gen, f32), mask);
  for (int64_t i = 0; i < samples; ++i) {
    CacheSample s;
    s.source = at::randn(latents, gen, f32);
    if (i % 2 == 0) s.target = at::randn(latents, gen, f32);
    s.prompt_embeds = at::randn({caption_length, caption_channels}, gen, f32);
    s.reverse_embeds = at::randn({caption_length, caption_channels}, gen, f32);
    s.prompt_mask = s.reverse_mask = mask;
    s.prompt = s.reverse_prompt = "(random)";
    writer.add(s);
  }
  writer.finish();
}

DataOrder::DataOrder(int64_t size, uint64_t seed) : size_(size), seed_(seed) {
  SS_CHECK(size_ > 0, "data order over {} samples", size_);
  shuffle();
}

void DataOrder::shuffle() {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed_ * 1000003ULL + static_cast<uint64_t>(epoch_));
  at::Tensor p = at::randperm(size_, gen, at::TensorOptions().dtype(at::kLong));
  perm_.assign(p.data_ptr<int64_t>(), p.data_ptr<int64_t>() + size_);
}

int64_t DataOrder::next() {
  if (pos_ == size_) {
    ++epoch_;
    pos_ = 0;
    shuffle();
  }
  return perm_[pos_++];
}

void DataOrder::seek(int64_t epoch, int64_t position) {
  SS_CHECK(epoch >= 0 && position >= 0 && position <= size_, "data position ({}, {}) outside {} samples", epoch,
           position, size_);
  epoch_ = epoch;
  pos_ = position;
  shuffle();
}

}  // namespace sanastream::train
