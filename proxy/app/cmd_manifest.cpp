// `fedproxy manifest fetch PEER --endpoint URL`: fetch a peer's manifest over
// mTLS (our node certificate as client certificate) and store it in
// manifests_dir — only if the certificate that served it carries the
// manifest's entity_uri as a URI SAN, chains to PEER's own trust anchors when
// it has some already, and the manifest names PEER.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "policy/anchors.hpp"
#include "config/manifest.hpp"
#include "proxy/app/args.hpp"
#include "proxy/app/commands.hpp"
#include "proxy/app/peer_anchors.hpp"
#include "proxy/app/snapshot.hpp"
#include "proxy/http1/response_parser.hpp"
#include "proxy/net/address.hpp"
#include "proxy/net/transport.hpp"

namespace fedproxy::app {

namespace {

// One GET over one mTLS connection, run on a private loop.
class ManifestFetch final : private net::TransportHandler, private http1::ResponseSink {
 public:
  ManifestFetch(net::Loop& loop) : loop_(loop), parser_(*this), timer_(loop, [this] { finish("timed out"); }) {}

  bool run(const config::Endpoint& ep, const std::string& host, std::shared_ptr<const tls::TlsContext> ctx,
           std::string* error) {
    request_ = "GET /.well-known/fedproxy-manifest.json HTTP/1.1\r\nHost: " + host +
               "\r\nAccept: application/json\r\nConnection: close\r\n\r\n";
    conn_ = net::Transport::connect(loop_, ep, this, std::make_unique<tls::TlsEngine>(ctx, ""), error);
    if (!conn_) return false;
    timer_.start(15000);
    loop_.run();
    if (!error_.empty()) *error = error_;
    return error_.empty() && done_;
  }
  const std::string& body() const { return body_; }
  const tls::PeerIdentity& server_identity() const { return server_; }

 private:
  void finish(const std::string& error) {
    if (finished_) return;
    finished_ = true;
    if (!done_ && error_.empty()) error_ = error;
    timer_.stop();
    if (conn_) conn_->close();
  }
  void on_transport_connected() override {
    server_ = conn_->tls()->peer();
    parser_.expect_response_to("GET");
    conn_->write(request_);
  }
  void on_transport_data(const char* data, size_t len) override {
    size_t n = parser_.feed(data, len);
    (void)n;
    if (parser_.failed()) finish("invalid HTTP response: " + parser_.error_detail());
  }
  void on_transport_eof() override {
    parser_.finish();
    finish("connection closed before a complete response");
  }
  void on_transport_error(const std::string& reason) override { finish(reason); }
  void on_transport_drained() override {}
  void on_response_head(http1::ResponseHead&& head) override { status_ = head.status; }
  void on_response_body(const char* data, size_t len) override {
    if (body_.size() + len > (1 << 20)) return finish("manifest larger than 1 MiB");
    body_.append(data, len);
  }
  void on_response_complete() override {
    if (status_ != 200) {
      error_ = "the peer answered HTTP " + std::to_string(status_);
    } else {
      done_ = true;
    }
    finish("");
  }

  net::Loop& loop_;
  http1::ResponseParser parser_;
  net::Timer timer_;
  std::unique_ptr<net::Transport> conn_;
  std::string request_, body_, error_;
  tls::PeerIdentity server_;
  int status_ = 0;
  bool done_ = false, finished_ = false;
};

}  // namespace

int cmd_manifest(const std::vector<std::string>& args) {
  static const CommandSpec spec{
      "manifest",
      "Usage: fedproxy manifest fetch PEER --endpoint https://HOST:PORT [--config FILE]\n"
      "Fetches PEER's manifest from /.well-known/fedproxy-manifest.json over mTLS, presenting\n"
      "this node's certificate, and stores it as <manifests_dir>/PEER.json — only when the\n"
      "serving certificate carries the manifest's entity_uri as a URI SAN, chains to PEER's\n"
      "own trust anchors when it has some (peers[].ca_bundle, or the trust_bundle of the\n"
      "manifest stored before), and the manifest's org is PEER. Exit 0 when stored, 1 otherwise,\n"
      "2 on a usage error (unknown option, missing or extra argument, no --endpoint or config).\n"
      "FILE may also come from $FEDPROXY_CONFIG.\n",
      {{"--endpoint", true}, {"--config", true, "-c"}},
      2,
      2};
  ParsedArgs opts;
  if (auto done = parse_args(spec, args, &opts)) return *done;
  if (opts.positional()[0] != "fetch") return usage_error(spec, "unknown subcommand '" + opts.positional()[0] + "'");
  const std::string& peer = opts.positional()[1];
  if (!opts.has("--endpoint")) return usage_error(spec, "--endpoint URL is required");
  const std::string url = *opts.value("--endpoint");
  std::string error;
  std::string config_path = app::config_path(opts, &error);
  if (config_path.empty()) return usage_error(spec, error);
  tls::init_crypto();
  SnapshotResult built = build_snapshot(config_path, true);
  if (!built.snapshot || !built.snapshot->client_tls) {
    std::fprintf(stderr, "fedproxy manifest fetch: %s\n",
                 built.problems.empty() ? "no TLS configured" : built.problems.front().c_str());
    return kExitProblems;
  }
  const config::Config& cfg = built.snapshot->config;
  if (cfg.manifests_dir.empty()) {
    std::fprintf(stderr, "fedproxy manifest fetch: %s: manifests_dir is not set\n", config_path.c_str());
    return kExitProblems;
  }
  std::string host;
  auto ep = net::endpoint_from_url(url, &host, &error);
  if (!ep) {
    std::fprintf(stderr, "fedproxy manifest fetch: %s\n", error.c_str());
    return kExitProblems;
  }
  net::Loop loop;
  ManifestFetch fetch(loop);
  if (!fetch.run(*ep, host, built.snapshot->client_tls, &error)) {
    std::fprintf(stderr, "fedproxy manifest fetch: %s: %s\n", url.c_str(), error.c_str());
    return kExitProblems;
  }
  auto parsed = config::parse_manifest(fetch.body(), url);
  if (!parsed.manifest) {
    for (const auto& p : parsed.problems) std::fprintf(stderr, "fedproxy manifest fetch: %s\n", p.to_string().c_str());
    return kExitProblems;
  }
  const config::Manifest& m = *parsed.manifest;
  const auto& sans = fetch.server_identity().uri_sans;
  if (m.org != peer) {
    std::fprintf(stderr, "fedproxy manifest fetch: the manifest is for \"%s\", not \"%s\"\n", m.org.c_str(), peer.c_str());
    return kExitProblems;
  }
  if (std::find(sans.begin(), sans.end(), m.entity_uri) == sans.end()) {
    std::fprintf(stderr,
                 "fedproxy manifest fetch: refused: the manifest claims entity_uri %s but the certificate that served "
                 "it carries %s\n",
                 m.entity_uri.c_str(), sans.empty() ? "no URI SAN" : sans.front().c_str());
    return kExitProblems;
  }
  // A peer with anchors of its own: the serving chain must reach them, or
  // another CA of the trust store could hand us this peer's manifest (and
  // with it a trust bundle of its choosing).
  const LoadedPeerAnchors anchors = load_peer_anchors(cfg, config::load_manifest_dir(cfg.manifests_dir).manifests);
  const auto& chain = fetch.server_identity().chain_spki_sha256;
  if (auto it = anchors.by_peer.find(peer); it != anchors.by_peer.end() && !it->second.empty()) {
    std::vector<std::string> keys;
    for (const auto& a : it->second) keys.push_back(a.spki_sha256);
    std::sort(keys.begin(), keys.end());
    if (!policy::chain_reaches_anchor(chain, keys)) {
      std::fprintf(stderr,
                   "fedproxy manifest fetch: refused: the certificate that served it is not issued by one of "
                   "%s's trust anchors (%s)\n",
                   peer.c_str(), it->second.front().file.c_str());
      return kExitProblems;
    }
  } else if (policy::chain_reaches_anchor(chain, policy::peer_only_anchor_spki(
                                                     anchors.by_peer, built.snapshot->client_tls->bundle().ca_spki_sha256()))) {
    std::fprintf(stderr,
                 "fedproxy manifest fetch: refused: the certificate that served it is issued by another peer's "
                 "trust anchor, which speaks for that peer only\n");
    return kExitProblems;
  }
  std::filesystem::create_directories(cfg.manifests_dir);
  std::string path = cfg.manifests_dir + "/" + peer + ".json";
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << fetch.body();
    if (!out) {
      std::fprintf(stderr, "fedproxy manifest fetch: cannot write %s\n", tmp.c_str());
      return kExitProblems;
    }
  }
  std::filesystem::rename(tmp, path);  // atomic: the watcher never sees half a file
  std::printf("stored %s (org %s, entity_uri %s, served by a certificate with DER SHA-256 %s)\n", path.c_str(),
              m.org.c_str(), m.entity_uri.c_str(), fetch.server_identity().der_sha256.c_str());
  return 0;
}

}  // namespace fedproxy::app
