import Foundation

/// Renders `page` (an HTML file) in headless Chromium with `probe` (a script that builds a JSON
/// object from what the browser laid out) put before `</body>`, and returns that object: what
/// a reader of the page sees, not what the HTML says.
public func probeInChromium(_ page: String, probe: String, directory: TemporaryDirectory) throws -> [String: Any] {
    let script = """
        <script>
        (function () {
          const out = (\(probe))();
          const pre = document.createElement('pre'); pre.id = 'probe'; pre.textContent = JSON.stringify(out); document.body.appendChild(pre);
        })();
        </script>
        """
    let html = try String(contentsOfFile: page, encoding: .utf8)
    let probed = directory.sub("probed-\(UUID().uuidString).html")
    try html.replacingOccurrences(of: "</body>", with: script + "</body>").write(toFile: probed, atomically: true, encoding: .utf8)
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/timeout")
    p.arguments = ["120", "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir=\(directory.sub("chromium"))",
                   "--dump-dom", "file://\(probed)"]
    let out = Pipe()
    p.standardOutput = out
    p.standardError = FileHandle.nullDevice
    try p.run()
    let dom = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    p.waitUntilExit()
    guard let start = dom.range(of: "<pre id=\"probe\">"), let end = dom.range(of: "</pre>", range: start.upperBound..<dom.endIndex) else {
        throw DaemonTestError("Chromium printed no probe (exit \(p.terminationStatus))")
    }
    let text = String(dom[start.upperBound..<end.lowerBound])
        .replacingOccurrences(of: "&lt;", with: "<").replacingOccurrences(of: "&gt;", with: ">").replacingOccurrences(of: "&amp;", with: "&")
    guard let seen = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else {
        throw DaemonTestError("the probe's output is not a JSON object: \(text.prefix(200))")
    }
    return seen
}
