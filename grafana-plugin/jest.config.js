// jsdom + swc (the same .swcrc as the bundle). @grafana/ui's CommonJS build still requires
// a few ESM-only packages, which jest must transform as well.
const esmOnly = ['react-calendar', 'get-user-locale', 'memoize', 'mimic-function', '@wojtekmaj/date-utils', 'marked', 'd3-interpolate', 'd3-color', 'd3-scale-chromatic', 'ol'];

module.exports = {
  testEnvironment: 'jsdom',
  roots: ['<rootDir>/src'],
  testMatch: ['**/*.test.ts', '**/*.test.tsx'],
  transform: { '^.+\\.(t|j)sx?$|^.+\\.mjs$': '@swc/jest' },
  transformIgnorePatterns: [`node_modules/(?!(${esmOnly.join('|')})/)`],
  moduleNameMapper: {
    '\\.(css|scss|sass)$': '<rootDir>/test-mocks/style.js',
    '^react-inlinesvg$': '<rootDir>/test-mocks/react-inlinesvg.js',
  },
  setupFiles: ['<rootDir>/jest.polyfills.js'],
  setupFilesAfterEnv: ['<rootDir>/jest.setup.ts'],
};
