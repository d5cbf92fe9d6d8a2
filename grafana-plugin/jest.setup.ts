import '@testing-library/jest-dom';

// i18next (inside @grafana/ui) advertises itself on init; keep CI logs to what the tests say.
const info = console.info;
console.info = (...args: unknown[]) => {
  if (typeof args[0] === 'string' && args[0].includes('i18next')) {
    return;
  }
  info(...args);
};
