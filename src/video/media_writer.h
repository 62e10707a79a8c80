// Writing the edited video: frames (RGB24 with presentation times in seconds on the source's clock)
// and the input's audio packets in, a file or stdout out. What is written for which path is planned
// by plan_output() (output_plan.h): mp4/mov/mkv with H.264, webm with VP9 + Opus, y4m (the default
// on stdout, no audio) or nut (carries audio); audio is stream-copied when the container takes its
// codec, else re-encoded, keeping its own timestamps so that picture and sound stay in sync.
//
// A file output is written to OUT.part and renamed to OUT by finish(), after the encoders are
// drained and the container's trailer is written, so OUT is always a complete file. finish() is also
// the way out of an interrupted run (SIGINT): what was written so far becomes a valid, shorter file.
// A writer destroyed without finish() (an error path) removes OUT.part. Every failure throws
// sanastream::Error with one line naming the output; FFmpeg's log never reaches stderr.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "video/audio_stream.h"
#include "video/output_plan.h"
#include "video/video_reader.h"

namespace sanastream::video {

class MediaWriter {
 public:
  MediaWriter();
  ~MediaWriter();
  MediaWriter(MediaWriter&&) noexcept;
  MediaWriter& operator=(MediaWriter&&) noexcept;

  // Plans the output, logs the plan's warnings (one line each), opens OUT.part (or stdout for "-")
  // and writes the container's header. A writer already open is abandoned first (as if destroyed).
  void open(const std::string& path, const WriterOptions& options);
  bool is_open() const;  // opened and not yet finished
  const OutputPlan& plan() const;
  // Encodes one frame: RGB24 of the options' size, frame.time in seconds (frame.index is ignored).
  void write(const Frame& frame);
  // Writes one packet of the options' audio stream (pass them in demux order): copied or
  // re-encoded as planned, ignored when the output drops audio.
  void write_audio(const AudioPacket& packet);
  // Drains the encoders, writes the trailer and renames OUT.part to OUT (flushes stdout). After it
  // the writer is closed; plan() and frames_written() still answer.
  void finish();
  bool finished() const;
  int64_t frames_written() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sanastream::video
