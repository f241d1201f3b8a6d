// The ibac access graph page. The picture is drawn by the control plane
// (the same drawing as `ibac network-mapper visualize`); this script places
// it, zooms and pans it, finds workloads, shows details, and asks for it
// again when the control plane says something changed.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const canvas = $('canvas');
  const state = {
    graph: null,
    selected: null, // {kind: 'node', id} or {kind: 'edge', client, server}
    namespaces: new Set(), // chosen; empty means all
    known: new Set(), // every namespace seen
    enforcer: 'proxy',
    view: null, // [x, y, w, h] of the SVG viewBox, once the user moved
    search: '',
    busy: false,
    again: false,
  };

  // Past this many calls, dashes are dropped from the lines (the arrow heads
  // still tell the verdicts apart by shape): thousands of dashed curves
  // make every zoom step repaint for most of a second.
  const MANY_EDGES = 1000;

  const SVG_NS = 'http://www.w3.org/2000/svg';

  // Labels smaller than this many pixels are left out: nobody can read
  // them, and thousands of them make every redraw several times slower.
  const LABEL_MIN_SCALE = 0.4;

  const VERDICT = {
    allowed: { icon: '✓', text: 'allowed' },
    'would-be-blocked': { icon: '!', text: 'would be blocked once the server is protected' },
    blocked: { icon: '✕', text: 'blocked' },
  };

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'class') e.className = v;
      else if (k.startsWith('data-')) e.setAttribute(k, v);
      else e[k] = v;
    }
    for (const c of children) {
      if (c !== null && c !== undefined) e.append(c);
    }
    return e;
  }

  function query() {
    const p = new URLSearchParams();
    if (state.namespaces.size) p.set('namespaces', [...state.namespaces].sort().join(','));
    if (state.enforcer !== 'proxy') p.set('enforcer', state.enforcer);
    return p.toString();
  }

  async function fetchOk(url, kind) {
    const r = await fetch(url, { credentials: 'same-origin' });
    if (r.status === 401) {
      document.body.dataset.state = 'signed-out';
      throw new Error('signed out');
    }
    if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
    return kind === 'json' ? r.json() : r.text();
  }

  // The canvas's shape: the picture is laid out to fill it.
  function aspect() {
    const r = canvas.getBoundingClientRect();
    return r.width > 0 && r.height > 0 ? (r.width / r.height).toFixed(3) : '1.6';
  }

  // Fetches the graph and its picture; a change that arrives meanwhile
  // makes one more round, never a pile of them.
  async function refresh() {
    if (state.busy) {
      state.again = true;
      return;
    }
    state.busy = true;
    const started = performance.now();
    try {
      const q = query();
      const [graph, svg] = await Promise.all([
        fetchOk('/ui/graph.json?' + q, 'json'),
        fetchOk('/ui/graph.svg?' + q + (q ? '&' : '') + 'aspect=' + aspect(), 'text'),
      ]);
      state.graph = graph;
      place(svg);
      if (!state.namespaces.size) graph.nodes.forEach((n) => state.known.add(n.namespace));
      namespaces();
      summary();
      exports(q);
      details();
      document.body.dataset.revision = String(graph.revision);
      document.body.dataset.state = 'ready';
      window.ibacTimings = { renderMs: performance.now() - started, updatedAt: Date.now() };
    } catch (e) {
      if (document.body.dataset.state !== 'signed-out') {
        $('summary').textContent = `Cannot load the graph: ${e.message}`;
      }
    } finally {
      state.busy = false;
      if (state.again) {
        state.again = false;
        refresh();
      }
    }
  }

  function place(text) {
    const parsed = new DOMParser().parseFromString(text, 'image/svg+xml');
    const svg = parsed.documentElement;
    if (svg.nodeName !== 'svg') return;
    const size = [0, 0, Number(svg.getAttribute('width')), Number(svg.getAttribute('height'))];
    const node = document.importNode(svg, true);
    node.removeAttribute('width');
    node.removeAttribute('height');
    node.setAttribute('viewBox', (state.view || size).join(' '));
    node.classList.toggle('many', node.querySelectorAll('path.edge').length > MANY_EDGES);
    const old = canvas.querySelector('svg');
    if (old) canvas.replaceChild(node, old);
    else canvas.append(node);
    // "Fit" shows what is drawn, not the picture's margins: the larger
    // the drawing on screen, the larger its text.
    node.dataset.full = drawn(node, size).map((n) => n.toFixed(1)).join(' ');
    if (!state.view) node.setAttribute('viewBox', node.dataset.full);
    labels();
    highlight();
  }

  // The box around everything drawn (legend, namespaces, calls,
  // workloads), with a little room around it; the whole picture if the
  // browser cannot tell.
  function drawn(node, size) {
    let box = null;
    for (const g of node.querySelectorAll(':scope > g.legend, :scope > g.namespaces, :scope > g.edges, :scope > g.nodes')) {
      const b = g.getBBox();
      if (!b.width && !b.height) continue;
      box = box
        ? { x0: Math.min(box.x0, b.x), y0: Math.min(box.y0, b.y), x1: Math.max(box.x1, b.x + b.width), y1: Math.max(box.y1, b.y + b.height) }
        : { x0: b.x, y0: b.y, x1: b.x + b.width, y1: b.y + b.height };
    }
    if (!box) return size;
    const pad = 10;
    return [box.x0 - pad, box.y0 - pad, box.x1 - box.x0 + 2 * pad, box.y1 - box.y0 + 2 * pad];
  }

  function svg() {
    return canvas.querySelector('svg');
  }

  function currentView() {
    const s = svg();
    return state.view || (s ? s.dataset.full.split(' ').map(Number) : [0, 0, 1, 1]);
  }

  // Redrawing thousands of lines takes a software-rendered browser a few
  // hundred milliseconds, too slow to follow a wheel or a drag. While the
  // view moves, the picture already painted is moved and scaled as an image
  // (once per frame, however many events arrived); once the view rests, it
  // is redrawn sharp at the new view.
  const SETTLE_MS = 150;
  let pending = false;
  let settle = 0;
  function setView(v) {
    state.view = v;
    clearTimeout(settle);
    settle = setTimeout(commitView, SETTLE_MS);
    canvas.dataset.settled = 'no';
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      previewView();
    });
  }

  function previewView() {
    const s = svg();
    if (!s || !state.view) return;
    const c = s.getAttribute('viewBox').split(' ').map(Number);
    const v = state.view;
    const r = canvas.getBoundingClientRect();
    const k = Math.min(r.width / c[2], r.height / c[3]);
    const zoom = c[2] / v[2];
    s.style.transformOrigin = `${(r.width - c[2] * k) / 2}px ${(r.height - c[3] * k) / 2}px`;
    s.style.transform = `translate(${zoom * k * (c[0] - v[0])}px, ${zoom * k * (c[1] - v[1])}px) scale(${zoom})`;
  }

  function commitView() {
    const s = svg();
    if (s && state.view) {
      s.style.transform = '';
      s.setAttribute('viewBox', state.view.map((n) => n.toFixed(1)).join(' '));
      labels();
    }
    canvas.dataset.settled = 'yes';
  }

  function labels() {
    const s = svg();
    if (s) s.classList.toggle('far', fitting().scale < LABEL_MIN_SCALE);
  }

  // Screen pixels per picture unit, and where the picture starts, for the
  // view about to be shown (which may not be painted yet): the SVG fits the
  // view into the canvas, centred, keeping its aspect.
  function fitting() {
    const r = canvas.getBoundingClientRect();
    const [x, y, w, h] = currentView();
    const scale = Math.min(r.width / w, r.height / h);
    return { x, y, scale, left: r.left + (r.width - w * scale) / 2, top: r.top + (r.height - h * scale) / 2 };
  }

  function toSvg(clientX, clientY) {
    const f = fitting();
    return { x: f.x + (clientX - f.left) / f.scale, y: f.y + (clientY - f.top) / f.scale };
  }

  // Zoom around the pointer.
  canvas.addEventListener('wheel', (e) => {
    if (!svg()) return;
    e.preventDefault();
    const p = toSvg(e.clientX, e.clientY);
    const k = e.deltaY > 0 ? 1.15 : 1 / 1.15;
    const [x, y, w, h] = currentView();
    setView([p.x - (p.x - x) * k, p.y - (p.y - y) * k, w * k, h * k]);
  }, { passive: false });

  // Drag to pan; a press without a drag is a click.
  let drag = null;
  canvas.addEventListener('pointerdown', (e) => {
    if (!svg() || e.button !== 0) return;
    drag = { x: e.clientX, y: e.clientY, view: currentView(), moved: false, scale: fitting().scale };
  });
  window.addEventListener('pointermove', (e) => {
    if (!drag) return;
    const dx = e.clientX - drag.x;
    const dy = e.clientY - drag.y;
    if (Math.abs(dx) + Math.abs(dy) > 4) drag.moved = true;
    if (drag.moved) {
      const [x, y, w, h] = drag.view;
      setView([x - dx / drag.scale, y - dy / drag.scale, w, h]);
      canvas.classList.add('dragging');
    }
  });
  window.addEventListener('pointerup', (e) => {
    const d = drag;
    drag = null;
    canvas.classList.remove('dragging');
    if (d && !d.moved) select(e.target);
  });

  function select(target) {
    const node = target.closest ? target.closest('[data-id]') : null;
    const edge = target.closest ? target.closest('[data-client][data-server]') : null;
    if (node) state.selected = { kind: 'node', id: node.dataset.id };
    else if (edge) state.selected = { kind: 'edge', client: edge.dataset.client, server: edge.dataset.server };
    else state.selected = null;
    highlight();
    details();
  }

  function highlight() {
    const s = svg();
    if (!s) return;
    s.querySelectorAll('.selected').forEach((e) => e.classList.remove('selected'));
    const sel = state.selected;
    if (sel && sel.kind === 'node') {
      s.querySelectorAll('[data-id]').forEach((n) => {
        if (n.dataset.id === sel.id) n.classList.add('selected');
      });
    } else if (sel) {
      s.querySelectorAll('path.edge').forEach((p) => {
        if (p.dataset.client === sel.client && p.dataset.server === sel.server) p.classList.add('selected');
      });
    }
    // Found workloads are copied above a veil over the picture: one layer
    // redrawn, rather than every other node and call fading one by one.
    const term = state.search.trim().toLowerCase();
    s.querySelectorAll('g.found-layer').forEach((g) => g.remove());
    const found = [];
    s.querySelectorAll('g.node').forEach((n) => {
      const hit = term.length > 0 && n.dataset.id.toLowerCase().includes(term);
      n.classList.toggle('match', hit);
      if (hit) found.push(n);
    });
    if (!term.length) return;
    const layer = document.createElementNS(SVG_NS, 'g');
    layer.setAttribute('class', 'found-layer');
    const [vx, vy, w, h] = s.dataset.full.split(' ');
    const veil = document.createElementNS(SVG_NS, 'rect');
    veil.setAttribute('class', 'veil');
    veil.setAttribute('x', vx);
    veil.setAttribute('y', vy);
    veil.setAttribute('width', w);
    veil.setAttribute('height', h);
    layer.append(veil);
    for (const n of found) {
      const copy = n.cloneNode(true);
      copy.setAttribute('class', 'found');
      layer.append(copy);
    }
    s.append(layer);
  }

  function when(unix) {
    return unix ? new Date(unix * 1000).toLocaleString() : 'never';
  }

  function badge(verdict) {
    const v = VERDICT[verdict] || { icon: '?', text: verdict };
    return el('span', { class: `badge ${verdict}`, 'data-verdict': verdict }, `${v.icon} ${v.text}`);
  }

  function edgeLink(e, label) {
    const a = el('button', { class: 'link', type: 'button' }, label, ' ', badge(e.verdict));
    a.addEventListener('click', () => {
      state.selected = { kind: 'edge', client: e.client, server: e.server };
      highlight();
      details();
    });
    return el('li', {}, a);
  }

  function copyButton(text) {
    const b = el('button', { type: 'button', class: 'copy' }, 'Copy');
    b.addEventListener('click', async () => {
      try {
        await navigator.clipboard.writeText(text);
        b.textContent = 'Copied';
      } catch {
        b.textContent = 'Select the text and copy it';
      }
    });
    return b;
  }

  function details() {
    const panel = $('details');
    const g = state.graph;
    const sel = state.selected;
    panel.replaceChildren();
    if (!g || !sel) {
      panel.append(el('p', { class: 'hint' }, 'Click a workload or a call for details.'));
      return;
    }
    if (sel.kind === 'node') {
      const n = g.nodes.find((x) => x.id === sel.id);
      if (!n) {
        panel.append(el('p', { class: 'hint' }, `${sel.id} is not in this view.`));
        return;
      }
      panel.dataset.kind = 'node';
      panel.append(el('h2', {}, n.name), el('p', { class: 'muted' }, `namespace ${n.namespace}`));
      panel.append(el('p', {}, n.registered ? 'Registered with the control plane.' : 'Not registered: known from intents or reports only; no ibac proxy enforces its verdicts.'));
      if (n.enforcementNote) panel.append(el('p', { class: 'status not-in-force' }, `⚠ ${n.enforcementNote}`));
      if (n.server) {
        panel.append(el('h3', {}, 'As a server'));
        panel.append(el('p', {}, n.server.protected ? '🔒 protected: ' : 'unprotected (shadow): ', n.server.protection));
        const blocking = { 'not-blocking': 'every call towards it is allowed', 'would-block': 'some calls would be blocked once it is protected', blocking: 'some calls are blocked now' };
        panel.append(el('p', { class: `status ${n.server.blocking}` }, blocking[n.server.blocking] || n.server.blocking));
      }
      if (n.client) {
        const clientText = { 'all-allowed': '✓ all its calls are allowed', 'some-would-be-blocked': '! some calls would be blocked once their servers are protected', 'some-blocked': '✕ some calls are blocked now' };
        panel.append(el('h3', {}, 'As a client'), el('p', { class: `status ${n.client}` }, clientText[n.client] || n.client));
      }
      const out = g.edges.filter((e) => e.client === n.id);
      const inn = g.edges.filter((e) => e.server === n.id);
      if (out.length) panel.append(el('h3', {}, 'Calls'), el('ul', {}, ...out.map((e) => edgeLink(e, `→ ${e.server}`))));
      if (inn.length) panel.append(el('h3', {}, 'Called by'), el('ul', {}, ...inn.map((e) => edgeLink(e, `← ${e.client}`))));
      return;
    }
    const e = g.edges.find((x) => x.client === sel.client && x.server === sel.server);
    if (!e) {
      panel.append(el('p', { class: 'hint' }, 'This call is not in this view.'));
      return;
    }
    panel.dataset.kind = 'edge';
    panel.append(el('h2', {}, `${e.client} → ${e.server}`), badge(e.verdict));
    panel.append(el('p', {}, 'From: ', e.sources.join(' and ')));
    if (e.mismatch) panel.append(el('p', { class: 'status not-in-force' }, `⚠ ${e.mismatch.message}`));
    if (e.observed) {
      const o = e.observed;
      panel.append(el('p', { class: 'muted' }, `Since the policy in force was published, its proxy let ${o.allowed + o.wouldBeBlocked} through (${o.allowed} allowed, ${o.wouldBeBlocked} would be blocked) and refused ${o.blocked}.`));
    }
    if (e.seen) {
      const c = e.seen.verdicts;
      panel.append(
        el('p', {}, `First seen ${when(e.seen.firstSeen)}; last seen ${when(e.seen.lastSeen)}.`),
        el('table', { class: 'counts' },
          el('tr', {}, el('th', {}, 'allowed'), el('td', {}, String(c.allowed))),
          el('tr', {}, el('th', {}, 'would be blocked'), el('td', {}, String(c.wouldBeBlocked))),
          el('tr', {}, el('th', {}, 'blocked'), el('td', {}, String(c.blocked))),
          c.unchecked ? el('tr', {}, el('th', {}, 'bypassed the proxies'), el('td', {}, String(c.unchecked))) : null),
      );
    }
    if (e.calls.length) {
      panel.append(el('h3', {}, 'Calls seen'), el('ul', {}, ...e.calls.map((c) => el('li', {}, `${c.request}: `, badge(c.verdict), ` × ${c.count}`))));
    }
    panel.append(el('h3', {}, 'Intents that allow it'));
    panel.append(e.intents.length ? el('ul', {}, ...e.intents.map((i) => el('li', {}, i))) : el('p', { class: 'muted' }, 'none'));
    if (e.suggestion) {
      panel.append(
        el('h3', {}, 'Declare it'),
        el('p', { class: 'muted' }, `Add this to ${e.client.split('.')[0]}'s ClientIntents (or apply it) so that the call keeps working once ${e.server} is protected:`),
        el('pre', { class: 'suggestion' }, e.suggestion),
        copyButton(e.suggestion),
      );
    }
  }

  function summary() {
    const counts = { allowed: 0, 'would-be-blocked': 0, blocked: 0 };
    state.graph.edges.forEach((e) => { counts[e.verdict] = (counts[e.verdict] || 0) + 1; });
    $('summary').replaceChildren(
      el('span', { class: 'count allowed' }, `✓ ${counts.allowed} allowed`),
      el('span', { class: 'count would-be-blocked' }, `! ${counts['would-be-blocked']} would be blocked`),
      el('span', { class: 'count blocked' }, `✕ ${counts.blocked} blocked`),
    );
  }

  function namespaces() {
    const list = $('namespace-list');
    const names = [...state.known].sort();
    if (list.childElementCount === names.length) return;
    list.replaceChildren(...names.map((n) => {
      const box = el('input', { type: 'checkbox', value: n, checked: state.namespaces.has(n) });
      box.addEventListener('change', () => {
        if (box.checked) state.namespaces.add(n);
        else state.namespaces.delete(n);
        $('namespace-choice').textContent = state.namespaces.size ? [...state.namespaces].sort().join(', ') : 'all';
        state.view = null;
        refresh();
      });
      return el('label', {}, box, ` ${n}`);
    }));
  }

  function exports(q) {
    $('export-svg').href = `/ui/graph.svg?download=1${q ? '&' + q : ''}`;
    $('export-png').href = `/ui/graph.png?download=1${q ? '&' + q : ''}`;
  }

  $('search').addEventListener('input', (e) => {
    state.search = e.target.value;
    highlight();
  });
  $('search').addEventListener('keydown', (e) => {
    if (e.key !== 'Enter') return;
    const match = svg() && svg().querySelector('.node.match');
    if (!match) return;
    const t = /translate\(([-\d.]+),([-\d.]+)\)/.exec(match.getAttribute('transform'));
    if (!t) return;
    const r = match.querySelector('rect');
    const [bw, bh] = r ? [Number(r.getAttribute('width')), Number(r.getAttribute('height'))] : [0, 0];
    const [, , w, h] = currentView();
    setView([Number(t[1]) + bw / 2 - w / 2, Number(t[2]) + bh / 2 - h / 2, w, h]);
    state.selected = { kind: 'node', id: match.dataset.id };
    highlight();
    details();
  });
  $('fit').addEventListener('click', () => {
    state.view = null;
    clearTimeout(settle);
    canvas.dataset.settled = 'yes';
    const s = svg();
    if (s) {
      s.style.transform = '';
      s.setAttribute('viewBox', s.dataset.full);
      labels();
    }
  });
  document.querySelectorAll('input[name=enforcer]').forEach((r) => r.addEventListener('change', () => {
    state.enforcer = r.value;
    refresh();
  }));

  // Live: the control plane says when something changed.
  function listen() {
    const events = new EventSource('/ui/events');
    const live = $('live');
    events.addEventListener('open', () => {
      live.textContent = 'live';
      live.className = 'live on';
    });
    // The first event comes as soon as the stream opens (and again after a
    // reconnect), so it also loads the page: nothing is fetched twice and
    // nothing that changed in between is missed.
    events.addEventListener('changed', () => refresh());
    events.addEventListener('error', () => {
      live.textContent = 'reconnecting…';
      live.className = 'live off';
    });
  }

  listen();
  // Without the stream (a proxy that buffers it, or a signed-out page) the
  // graph is still loaded once, and a signed-out page says so.
  setTimeout(() => { if (!state.graph) refresh(); }, 1500);
})();
