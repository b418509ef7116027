//! Puts the official Socket.IO browser client (from `web/node_modules`, installed by
//! `scripts/setup.sh`) into OUT_DIR for `src/http.rs` to embed, or a stub that makes the page
//! say how to get it: the worker then still builds and serves everything else.

use std::path::Path;

const CLIENT: &str = "web/node_modules/socket.io-client/dist/socket.io.min.js";

/// Served instead when the client is absent: the page finds no `io` and shows this.
const STUB: &str = "window.SIO_MISSING = \"The Socket.IO client was not built into this worker: \
run scripts/setup.sh (npm ci in web/), then rebuild.\";\n";

fn main() {
    let Some(out) = std::env::var_os("OUT_DIR") else {
        println!("cargo:warning=OUT_DIR is not set");
        std::process::exit(1);
    };
    let client = Path::new(CLIENT);
    let js = if client.is_file() {
        println!("cargo:rerun-if-changed={CLIENT}");
        match std::fs::read_to_string(client) {
            // The source map is not shipped: drop the comment that would make devtools ask.
            Ok(text) => text
                .lines()
                .filter(|l| !l.starts_with("//# sourceMappingURL="))
                .collect::<Vec<_>>()
                .join("\n"),
            Err(e) => {
                println!("cargo:warning=cannot read {CLIENT}: {e}; serving the stub");
                STUB.to_owned()
            }
        }
    } else {
        // Watching the folder (not the missing file, which would rerun this on every build)
        // notices `npm ci` creating node_modules.
        println!("cargo:rerun-if-changed=web");
        println!("cargo:warning={CLIENT} is missing: the page will ask for scripts/setup.sh");
        STUB.to_owned()
    };
    println!("cargo:rerun-if-changed=build.rs");
    if let Err(e) = std::fs::write(Path::new(&out).join("socket.io.min.js"), js) {
        println!("cargo:warning=cannot write the Socket.IO client to OUT_DIR: {e}");
        std::process::exit(1);
    }
}
