// @grafana/ui draws icons with react-inlinesvg, which would fetch each SVG by URL: in tests,
// an empty <svg> instead (no request, no state update after the test).
const React = require('react');

function InlineSVG({ src, className }) {
  return React.createElement('svg', { className, 'data-src': src });
}

module.exports = { __esModule: true, default: InlineSVG };
