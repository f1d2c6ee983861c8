#!/bin/sh
# The image's ffmpeg: Debian's own ffmpeg source (apt-get source, Debian's patches applied), configured
# with only what the daemon asks of it (README "Run in a container", image size): reading a network
# source (rtsp, rtsps, http(s), hls, srt) or a file, decoding the audio codecs cameras, intercoms and
# radio streams carry, and writing mono float samples to a pipe. No video decoder, no device, no
# encoder but PCM: 3 MB, against the 300 MB of libraries Debian's ffmpeg package brings. LGPL-2.1-or-later
# (no GPL or nonfree part is enabled), with GnuTLS for TLS and libsrt (MPL-2.0) for SRT.
# Usage: build-ffmpeg.sh OUT   (installs OUT/bin/ffmpeg and OUT/share/doc/ffmpeg/copyright)
set -eu
out=$1
. /etc/os-release
echo "deb-src http://deb.debian.org/debian ${VERSION_CODENAME} main" > /etc/apt/sources.list.d/ffmpeg-src.list
echo "deb-src http://deb.debian.org/debian-security ${VERSION_CODENAME}-security main" >> /etc/apt/sources.list.d/ffmpeg-src.list
apt-get update
apt-get install -y --no-install-recommends gcc make pkg-config libc6-dev libgnutls28-dev libsrt-gnutls-dev \
  zlib1g-dev dpkg-dev xz-utils ca-certificates
mkdir -p /tmp/ffmpeg && cd /tmp/ffmpeg
apt-get source --only-source ffmpeg
cd ffmpeg-*/
./configure --prefix=/usr/local --disable-everything --disable-autodetect --disable-doc --disable-debug \
  --disable-ffplay --disable-ffprobe --disable-x86asm --disable-avdevice --disable-swscale --disable-postproc \
  --enable-network --enable-swresample --enable-avfilter --enable-gnutls --enable-libsrt --enable-zlib \
  --enable-protocol=file,pipe,data,tcp,udp,rtp,srtp,http,https,httpproxy,tls,hls,crypto,libsrt \
  --enable-demuxer=rtsp,rtp,sdp,hls,mpegts,aac,mp3,ogg,matroska,mov,wav,flac,flv,w64,pcm_s16le,pcm_s16be,pcm_f32le,pcm_mulaw,pcm_alaw,g722,g726,g726le,amr,loas \
  --enable-decoder=aac,aac_latm,aac_fixed,mp3,mp3float,mp2,mp2float,opus,vorbis,flac,alac,pcm_s16le,pcm_s16be,pcm_s24le,pcm_s24be,pcm_s32le,pcm_u8,pcm_f32le,pcm_f32be,pcm_f64le,pcm_alaw,pcm_mulaw,adpcm_g722,adpcm_g726,adpcm_g726le,amrnb,amrwb,adpcm_ima_wav,adpcm_ms \
  --enable-parser=aac,aac_latm,opus,vorbis,flac,mpegaudio,h264,hevc,mjpeg,g723_1,g729,amr \
  --enable-bsf=aac_adtstoasc \
  --enable-encoder=pcm_f32le,pcm_s16le \
  --enable-muxer=pcm_f32le,pcm_s16le,wav \
  --enable-filter=aresample,aformat,anull,null,format
make -j"$(nproc)"
install -D -m 0755 ffmpeg "$out/bin/ffmpeg"
install -D -m 0644 debian/copyright "$out/share/doc/ffmpeg/copyright"
"$out/bin/ffmpeg" -hide_banner -protocols | grep -qw srt
