//! The access graph page in a real browser (headless Chromium through
//! chromedriver), through the demo: the three clients of
//! productcatalogservice show would-be-blocked, turn allowed once their
//! intents are applied — live, without a reload — and an undeclared caller
//! shows blocked once the server is protected. At each of those steps, and
//! after Fit, the picture must fill most of the view with every label at
//! 11 pixels or more. Screenshots of each step are saved under
//! `target/tmp/ui-screenshots/`.
//!
//! Needs Debian's `chromium` and `chromium-driver` (the test command
//! installs them).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    clippy::print_stdout
)]

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

const CLIENTS: [&str; 3] = ["frontend", "checkoutservice", "recommendationservice"];

fn screenshots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn shoot(browser: &Client, name: &str) {
    let png = browser.screenshot().await.unwrap();
    std::fs::write(screenshots().join(name), png).unwrap();
}

/// How much of the canvas the drawing covers, and the smallest text on
/// screen, in pixels.
#[derive(Debug, serde::Deserialize)]
struct Coverage {
    width: f64,
    height: f64,
    smallest_text: f64,
}

async fn coverage(browser: &Client) -> Coverage {
    let v = browser
        .execute(
            "const c = document.getElementById('canvas').getBoundingClientRect();
             const s = document.querySelector('#canvas svg');
             let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
             for (const g of s.querySelectorAll(':scope > g.legend, :scope > g.namespaces, :scope > g.edges, :scope > g.nodes')) {
               const r = g.getBoundingClientRect();
               if (!r.width && !r.height) continue;
               x0 = Math.min(x0, r.left); y0 = Math.min(y0, r.top);
               x1 = Math.max(x1, r.right); y1 = Math.max(y1, r.bottom);
             }
             let smallest = Infinity;
             for (const t of s.querySelectorAll('text')) {
               const px = parseFloat(getComputedStyle(t).fontSize) * t.getScreenCTM().a;
               smallest = Math.min(smallest, px);
             }
             return {width: (Math.min(x1, c.right) - Math.max(x0, c.left)) / c.width,
                     height: (Math.min(y1, c.bottom) - Math.max(y0, c.top)) / c.height,
                     smallest_text: smallest};",
            vec![],
        )
        .await
        .unwrap();
    serde_json::from_value(v).unwrap()
}

/// The picture fills the view: it spans nearly all of the canvas one way
/// (its shape decides which) and most of it by area, and its text is
/// readable.
async fn fills_the_view(browser: &Client, step: &str) {
    let c = coverage(browser).await;
    println!("{step}: the drawing covers {c:?} of the view");
    assert!(
        c.width.max(c.height) >= 0.9 && c.width * c.height >= 0.75,
        "{step}: the picture fills the view: {c:?}"
    );
    assert!(
        c.smallest_text >= 11.0,
        "{step}: every label is at least 11 px: {c:?}"
    );
}

/// The verdict of each edge the page draws: (client, server) → verdict.
async fn page_edges(browser: &Client) -> Vec<(String, String, String)> {
    let v = browser
        .execute(
            "return [...document.querySelectorAll('path.edge')].map(p => [p.dataset.client, p.dataset.server, p.dataset.verdict]);",
            vec![],
        )
        .await
        .unwrap();
    serde_json::from_value(v).unwrap_or_default()
}

fn verdict_of(edges: &[(String, String, String)], client: &str, server: &str) -> Option<String> {
    edges
        .iter()
        .find(|(c, s, _)| *c == format!("{client}.{NS}") && *s == format!("{server}.{NS}"))
        .map(|(_, _, v)| v.clone())
}

async fn wait_page(
    what: &str,
    browser: &Client,
    mut check: impl FnMut(&[(String, String, String)]) -> bool,
) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(180) {
        if check(&page_edges(browser).await) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting until {what}");
}

/// The ids of the drawn workloads that have CSS class `class`.
async fn node_ids(browser: &Client, class: &str) -> Value {
    let script =
        format!("return [...document.querySelectorAll('.node.{class}')].map(n => n.dataset.id);");
    browser.execute(&script, vec![]).await.unwrap()
}

/// The text of the element `locator` finds.
async fn text_of(browser: &Client, locator: Locator<'_>) -> String {
    browser.find(locator).await.unwrap().text().await.unwrap()
}

/// Clicks the element `css` finds; the picture is replaced when the
/// control plane reports a change, so a click that finds the element gone
/// finds it again.
async fn click(browser: &Client, css: &str) {
    for _ in 0..20 {
        let found = browser.find(Locator::Css(css)).await.unwrap();
        match found.click().await {
            Ok(_) => return,
            Err(fantoccini::error::CmdError::Standard(e))
                if e.error == fantoccini::error::ErrorStatus::StaleElementReference =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("clicking {css}: {e}"),
        }
    }
    panic!("{css} kept being replaced");
}

async fn wait_until_js(browser: &Client, what: &str, script: &str) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        if browser.execute(script, vec![]).await.unwrap() == json!(true) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting until {what}");
}

fn chromedriver(port: u16) -> std::process::Child {
    std::process::Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver is missing: install Debian's chromium and chromium-driver (scripts/test does)")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_graph_follows_the_tutorial_live() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    std::fs::create_dir_all(&dir).unwrap();
    let [port, ui] = free_ports();
    let mut procs = Processes(vec![start_up(&dir, port, Some(ui))]);
    let demo = Demo {
        dir: dir.clone(),
        url: format!("https://127.0.0.1:{port}"),
    };
    let driver_port = free_port();
    procs.0.push(chromedriver(driver_port));
    wait_until(
        "chromedriver and the page listen",
        Duration::from_secs(60),
        || {
            std::net::TcpStream::connect(("127.0.0.1", driver_port)).is_ok()
                && dir.join("ui.url").exists()
        },
    );

    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({"args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1600,1000"]}),
    );
    let browser = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{driver_port}"))
        .await
        .unwrap();

    // Without the token, nothing is shown.
    browser
        .goto(&format!("http://127.0.0.1:{ui}/"))
        .await
        .unwrap();
    let text = text_of(&browser, Locator::Css("body")).await;
    assert_contains_all(&text, &["Open the link"]);

    // With the link `ibac up` printed: the page, and the token leaves the address bar.
    let link = std::fs::read_to_string(dir.join("ui.url")).unwrap();
    browser.goto(link.trim()).await.unwrap();
    assert_eq!(
        browser.current_url().await.unwrap().as_str(),
        format!("http://127.0.0.1:{ui}/")
    );
    browser
        .execute("window.sameDocument = 'yes';", vec![])
        .await
        .unwrap();

    // 1. Shadow mode: the three clients of productcatalogservice would be blocked.
    wait_page(
        "the three clients show would-be-blocked",
        &browser,
        |edges| {
            CLIENTS.iter().all(|c| {
                verdict_of(edges, c, "productcatalogservice").as_deref() == Some("would-be-blocked")
            })
        },
    )
    .await;
    fills_the_view(&browser, "shadow mode").await;
    shoot(&browser, "1-shadow-mode.png").await;

    // 2. Apply their exported intents: the page turns them allowed by itself.
    let exported = demo.ok(&["network-mapper", "export", "--server", CATALOG]);
    let file = tmp.path().join("catalog-clients.yaml");
    std::fs::write(&file, exported).unwrap();
    demo.ok(&["apply", "-f", file.to_str().unwrap()]);
    let applied = Instant::now();
    wait_page("the three clients show allowed", &browser, |edges| {
        CLIENTS
            .iter()
            .all(|c| verdict_of(edges, c, "productcatalogservice").as_deref() == Some("allowed"))
    })
    .await;
    println!(
        "live update after apply: {} ms (goal: within 2,000 ms)",
        applied.elapsed().as_millis()
    );
    let same = browser
        .execute("return window.sameDocument;", vec![])
        .await
        .unwrap();
    assert_eq!(same, json!("yes"), "the page updated without a reload");
    fills_the_view(&browser, "intents declared").await;
    shoot(&browser, "2-intents-applied.png").await;

    // 3. An undeclared caller, then protection: it shows blocked.
    start_rogue(&demo, tmp.path(), &mut procs);
    demo.ok(&["protect", CATALOG]);
    let protected = Instant::now();
    wait_page("the undeclared caller shows blocked", &browser, |edges| {
        verdict_of(edges, "rogue", "productcatalogservice").as_deref() == Some("blocked")
            && CLIENTS.iter().all(|c| {
                verdict_of(edges, c, "productcatalogservice").as_deref() == Some("allowed")
            })
    })
    .await;
    println!(
        "live update after the rogue's blocked calls were reported: {} ms",
        protected.elapsed().as_millis()
    );
    let protected_nodes = node_ids(&browser, "protected").await;
    assert_eq!(protected_nodes, json!([CATALOG]));
    fills_the_view(&browser, "protected, a rogue blocked").await;
    shoot(&browser, "3-protected.png").await;
    // Zoomed in, then Fit: the whole drawing fills the view again.
    browser
        .execute(
            "const c = document.getElementById('canvas');
             const r = c.getBoundingClientRect();
             for (let i = 0; i < 5; i++) c.dispatchEvent(new WheelEvent('wheel', {deltaY: -100, clientX: r.left + r.width / 3, clientY: r.top + r.height / 3, bubbles: true, cancelable: true}));",
            vec![],
        )
        .await
        .unwrap();
    wait_until_js(
        &browser,
        "the zoom settles",
        "return document.getElementById('canvas').dataset.settled === 'yes';",
    )
    .await;
    click(&browser, "#fit").await;
    fills_the_view(&browser, "after Fit").await;
    shoot(&browser, "3-protected-fit.png").await;

    // 4. Details: click the rogue, then its call; the panel explains and
    //    offers the ClientIntents that would declare it.
    click(&browser, &format!("g.node[data-id='rogue.{NS}']")).await;
    let text = text_of(&browser, Locator::Id("details")).await;
    assert_contains_all(&text, &["some calls are blocked now"]);
    click(&browser, "#details button.link").await;
    let text = text_of(&browser, Locator::Id("details")).await;
    assert_contains_all(
        &text,
        &[
            &format!("rogue.{NS} → {CATALOG}"),
            "blocked",
            "discovered",
            "Intents that allow it",
            "none",
        ],
    );
    let suggestion = text_of(&browser, Locator::Css("pre.suggestion")).await;
    assert_contains_all(
        &suggestion,
        &[
            "kind: ClientIntents",
            "name: rogue",
            "name: productcatalogservice",
        ],
    );
    shoot(&browser, "4-details.png").await;

    // 5. Search by name.
    browser
        .find(Locator::Id("search"))
        .await
        .unwrap()
        .send_keys("catalog")
        .await
        .unwrap();
    let matches = node_ids(&browser, "match").await;
    assert_eq!(matches, json!([CATALOG]));
    shoot(&browser, "5-search.png").await;

    // 6. Namespace filter and the enforcer toggle, then export: the page's
    //    SVG is the CLI's picture, drawn by the same module.
    let picture: Value = browser
        .execute_async(
            "const done = arguments[0];
             Promise.all([fetch('/ui/graph.svg?download=1'), fetch('/ui/graph.png?download=1')])
               .then(async ([s, p]) => done([s.status, s.headers.get('content-disposition'), await s.text(), p.status, p.headers.get('content-type')]));",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(picture[0], 200);
    assert!(
        picture[1]
            .as_str()
            .unwrap()
            .contains("ibac-access-graph.svg")
    );
    assert_eq!(picture[3], 200);
    assert_eq!(picture[4], "image/png");
    // `ibac network-mapper visualize` with `more` arguments, drawn to `out`.
    let visualize = |out: &str, more: &[&str]| {
        let path = tmp.path().join(out);
        let mut args = vec!["network-mapper", "visualize"];
        args.extend(more);
        args.extend(["-o", path.to_str().unwrap()]);
        demo.ok(&args);
        std::fs::read_to_string(&path).unwrap()
    };
    let cli_svg = visualize("cli.svg", &[]);
    assert!(
        picture[2].as_str() == Some(cli_svg.as_str()),
        "the page exports what `ibac network-mapper visualize` draws"
    );
    // A graph saved with `ibac get graph -o json` draws the same picture.
    let saved = tmp.path().join("graph.json");
    std::fs::write(&saved, demo.ok(&["get", "graph", "-o", "json"])).unwrap();
    assert!(
        visualize("saved.svg", &["-f", saved.to_str().unwrap()]) == cli_svg,
        "a saved graph draws as the control plane's"
    );

    click(&browser, "input[value='network-policy']").await;
    wait_page(
        "network policies cannot see paths: the picture is redrawn",
        &browser,
        |edges| !edges.is_empty(),
    )
    .await;
    click(&browser, "#namespaces summary").await;
    shoot(&browser, "6-filters.png").await;

    browser.close().await.unwrap();
}
