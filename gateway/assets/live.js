// Live updates of an auction page over Server-Sent Events. The page works without this script:
// it only keeps the highest bid, the counters and the recent bids current without a reload.
// Text goes in with textContent only, so a bidder's name can never become markup.
(function () {
  'use strict';

  var root = document.querySelector('[data-live-events]');
  if (!root || !window.EventSource) {
    return;
  }

  function byId(id) {
    return document.getElementById(id);
  }

  var statusLine = byId('live-status');

  function showStatus(state, text) {
    statusLine.hidden = false;
    statusLine.dataset.state = state;
    statusLine.textContent = text;
  }

  function setText(id, text) {
    var element = byId(id);
    if (element && element.textContent !== text) {
      element.textContent = text;
      return true;
    }
    return false;
  }

  function highlight(element) {
    element.classList.remove('updated');
    // Reading layout restarts the animation when the class comes back.
    void element.offsetWidth;
    element.classList.add('updated');
  }

  function renderRecent(bids) {
    var list = byId('recent-bids');
    var items = bids.map(function (bid) {
      var item = document.createElement('li');
      var bidder = document.createElement('span');
      bidder.className = 'bidder';
      bidder.textContent = bid.name;
      var price = document.createElement('span');
      price.className = 'price';
      price.textContent = String(bid.price);
      var when = document.createElement('span');
      when.className = 'when';
      when.textContent = bid.at;
      item.append(bidder, ' ', price, ' ', when);
      return item;
    });
    list.replaceChildren.apply(list, items);
    byId('recent-empty').hidden = bids.length > 0;
  }

  function render(auction) {
    var highest = auction.highest;
    var changed;
    if (highest) {
      changed = setText('highest-price', String(highest.price));
      setText('highest-name', highest.name);
      setText('highest-at', highest.at);
      byId('highest-name').parentElement.hidden = false;
      byId('no-bids').hidden = true;
    } else {
      changed = setText('highest-price', '');
      byId('highest-name').parentElement.hidden = true;
      byId('no-bids').hidden = false;
    }
    renderLife(auction);
    setText('minimum-next', String(auction.minimum_next_bid));
    setText('price-help-minimum', String(auction.minimum_next_bid));
    setText('bid-count', String(auction.bid_count));
    if (auction.recent) {
      renderRecent(auction.recent);
    }
    if (changed) {
      highlight(byId('highest-price'));
    }
  }

  // The auction's life: status, the end (moved by late bids), the reserve, the result.
  function renderLife(auction) {
    var status = byId('auction-status');
    if (status) {
      status.className = 'status status-' + auction.status;
      setText('auction-status', auction.status_text);
    }
    var end = byId('end-time');
    if (end && auction.end_at) {
      if (setText('end-time', auction.end_at)) {
        highlight(end);
      }
      end.dataset.endMs = String(auction.end_ms);
    }
    if (byId('extensions')) {
      byId('extensions').hidden = !auction.extensions;
      setText('extension-count', String(auction.extensions));
    }
    if (byId('reserve')) {
      byId('reserve').hidden = !auction.reserve_not_met || !!auction.result;
    }
    var result = byId('result');
    if (result) {
      result.hidden = !auction.result;
      if (auction.result) {
        setText('result', auction.result.sentence);
        if (byId('auction-end')) {
          byId('auction-end').hidden = true;
        }
      }
    }
    byId('bid-section').hidden = !auction.taking_bids;
    byId('bids-closed').hidden = auction.taking_bids;
    tick();
  }

  // The countdown to the end, once a second; the plain end time stays for everyone.
  function tick() {
    var end = byId('end-time');
    var countdown = byId('countdown');
    if (!end || !countdown || !end.dataset.endMs) {
      return;
    }
    var left = Math.max(0, Number(end.dataset.endMs) - Date.now());
    var seconds = Math.floor(left / 1000);
    var text;
    if (left === 0) {
      text = '(ending…)';
    } else if (seconds < 120) {
      text = '(' + seconds + ' s left)';
    } else {
      var minutes = Math.floor(seconds / 60);
      var hours = Math.floor(minutes / 60);
      text = hours > 0
        ? '(' + hours + ' h ' + (minutes % 60) + ' min left)'
        : '(' + minutes + ' min left)';
    }
    countdown.textContent = ' ' + text;
  }
  tick();
  window.setInterval(tick, 1000);

  var source = new EventSource(root.dataset.liveEvents);

  source.addEventListener('auction', function (event) {
    try {
      render(JSON.parse(event.data));
    } catch (error) {
      // A malformed update is skipped; the next one brings the page up to date.
    }
  });

  source.addEventListener('status', function (event) {
    if (event.data === 'live') {
      showStatus('live', 'Live: new bids appear here as they are placed.');
    } else {
      showStatus('reconnecting', 'Reconnecting to live updates…');
    }
  });

  source.addEventListener('error', function () {
    // EventSource reconnects by itself; say so meanwhile.
    showStatus('reconnecting', 'Reconnecting to live updates…');
  });
})();
