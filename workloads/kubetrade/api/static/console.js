// The console's own script: follow the page's live stream and swap in the panels the server
// renders; draw the strategy charts and set the data the server sends into them.  No polling: EventSource reconnects by itself (after the
// server's `retry`), and the server sends every panel again on each connect.
(function () {
  "use strict";
  var state = document.getElementById("live-state");
  var pending = {};

  function show(kind, text) {
    if (!state) return;
    state.className = "live-state " + kind;
    state.textContent = text;
    document.body.dataset.liveState = kind;
  }

  function follow(url) {
    var source = new EventSource(url);
    show("connecting", "connecting…");
    source.addEventListener("hello", function () { show("live", "live"); });
    source.onopen = function () { show("live", "live"); };
    source.onerror = function () {
      if (source.readyState === EventSource.CLOSED) {
        show("closed", "disconnected: reload or log in again");
      } else {
        show("reconnecting", "reconnecting…");
      }
    };
    source.addEventListener("panel", function (event) { swap(JSON.parse(event.data)); });
    source.addEventListener("chart", function (event) { redraw(event.data); });
    // A panel whose form is being sent is not replaced until the answer is in: htmx drops the answer
    // of a form that left the page, so the action would happen without the page showing it.
    document.addEventListener("htmx:afterRequest", function () {
      var waiting = pending;
      pending = {};
      Object.keys(waiting).forEach(function (id) { swap(waiting[id]); });
    });
    function swap(message) {
      var old = document.getElementById(message.id);
      if (!old) return;
      if (old.matches(".htmx-request") || old.querySelector(".htmx-request")) {
        pending[message.id] = message;
        return;
      }
      var holder = document.createElement("div");
      holder.innerHTML = message.html;
      var fresh = holder.firstElementChild;
      if (!fresh) return;
      old.replaceWith(fresh);
      if (window.htmx) window.htmx.process(fresh);
      document.dispatchEvent(new CustomEvent("kubetrade:panel", { detail: message.id }));
    }
    source.addEventListener("logout", function () {
      source.close();
      show("closed", "session ended: log in again");
    });
  }

  var drawn = null;  // the strategy page's series, once drawn

  function markersOf(data) {
    return data.markers.map(function (m) {
      var buy = m.side === "buy";
      return { time: m.time, position: buy ? "belowBar" : "aboveBar", color: buy ? "#58a6ff" : "#f0b429",
               shape: buy ? "arrowUp" : "arrowDown", text: buy ? "B" : "S" };
    });
  }

  function caption(data) {
    var el = document.getElementById("chart-caption");
    if (el) el.textContent = data.symbol + " " + data.timeframe + " · " + data.markers.length + " fills marked" +
      (data.unplaced ? " · " + data.unplaced + " outside these bars" : "");
    var last = data.candles.length ? data.candles[data.candles.length - 1].time : "";
    document.body.dataset.chartLast = String(last);
    document.body.dataset.chartMarkers = String(data.markers.length);
  }

  function charts() {
    var holder = document.getElementById("chart-data");
    if (!holder || !window.LightweightCharts) return;
    var data = JSON.parse(holder.textContent);
    var LC = window.LightweightCharts;
    var base = {
      layout: { background: { color: "#0d1117" }, textColor: "#c9d1d9" },
      grid: { vertLines: { color: "#1b2230" }, horzLines: { color: "#1b2230" } },
      timeScale: { timeVisible: true, secondsVisible: false },
      autoSize: true
    };
    caption(data);
    var price = LC.createChart(document.getElementById("candles"), base);
    var candles = price.addSeries(LC.CandlestickSeries, {
      upColor: "#3fb950", downColor: "#f85149", borderVisible: false, wickUpColor: "#3fb950", wickDownColor: "#f85149"
    });
    candles.setData(data.candles);
    var markers = markersOf(data);
    var marks = LC.createSeriesMarkers ? LC.createSeriesMarkers(candles, markers) : null;
    var last = data.candles.length ? data.candles[data.candles.length - 1].time : null;
    if (markers.length && last !== null) {  // from a little before the first fill shown to the newest bar
      var step = data.candles.length > 1 ? data.candles[1].time - data.candles[0].time : 300;
      price.timeScale().setVisibleRange({ from: Math.max(data.candles[0].time, markers[0].time - 60 * step), to: last });
    } else {
      price.timeScale().fitContent();
    }
    var eq = LC.createChart(document.getElementById("equity"), base);
    var equity = eq.addSeries(LC.BaselineSeries, { baseValue: { type: "price", price: data.capital } });
    equity.setData(data.equity);
    eq.timeScale().fitContent();
    var dd = LC.createChart(document.getElementById("drawdown"), base);
    var drawdown = dd.addSeries(LC.AreaSeries, { lineColor: "#f85149", topColor: "rgba(248,81,73,0.05)",
                                                 bottomColor: "rgba(248,81,73,0.4)", invertFilledArea: true });
    drawdown.setData(data.drawdown);
    dd.timeScale().fitContent();
    drawn = { candles: candles, marks: marks, equity: equity, drawdown: drawdown, charts: [price, eq, dd] };
    document.body.dataset.chartUpdates = "0";
    document.body.dataset.charts = "drawn";
  }

  // New chart data from the stream: the same shape the page was drawn from.  The series take it
  // whole (the server reads at most every two seconds); a view the trader zoomed or scrolled stays.
  function redraw(text) {
    var holder = document.getElementById("chart-data");
    if (!holder || !drawn) return;
    var data = JSON.parse(text);
    holder.textContent = text;
    drawn.candles.setData(data.candles);
    if (drawn.marks) drawn.marks.setMarkers(markersOf(data));
    drawn.equity.setData(data.equity);
    drawn.drawdown.setData(data.drawdown);
    caption(data);
    document.body.dataset.chartUpdates = String(Number(document.body.dataset.chartUpdates || "0") + 1);
  }

  document.addEventListener("DOMContentLoaded", function () {
    var url = document.body.dataset.live;
    if (url) follow(url);
    charts();
  });
})();
