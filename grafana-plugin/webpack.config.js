// A small stand-in for create-plugin's webpack setup (which wants Node 22): one AMD module.js
// that Grafana loads with SystemJS, with React, rxjs and @grafana/{data,runtime,ui} left to the host.
const path = require('path');
const CopyWebpackPlugin = require('copy-webpack-plugin');
const { version } = require('./package.json');

const today = new Date().toISOString().slice(0, 10);

module.exports = (_env, argv) => ({
  mode: argv.mode ?? 'production',
  context: path.join(__dirname, 'src'),
  entry: { module: './module.ts' },
  devtool: argv.mode === 'development' ? 'eval-source-map' : 'source-map',
  output: {
    clean: true,
    filename: '[name].js',
    path: path.join(__dirname, 'dist'),
    library: { type: 'amd' },
    publicPath: 'public/plugins/postfixinsights-messages-datasource/',
    uniqueName: 'postfixinsights-messages-datasource',
  },
  externals: ['react', 'react-dom', 'rxjs', /^rxjs\//, /^@grafana\/(data|runtime|ui)$/],
  resolve: { extensions: ['.ts', '.tsx', '.js'] },
  module: {
    rules: [{ test: /\.tsx?$/, exclude: /node_modules/, use: { loader: 'swc-loader' } }],
  },
  plugins: [
    new CopyWebpackPlugin({
      patterns: [
        {
          from: 'plugin.json',
          transform: (content) => content.toString().replace('%VERSION%', version).replace('%TODAY%', today),
        },
        { from: 'img', to: 'img' },
        { from: '../README.md', to: 'README.md' },
        { from: '../CHANGELOG.md', to: 'CHANGELOG.md', noErrorOnMissing: true },
        { from: '../LICENSE', to: 'LICENSE', noErrorOnMissing: true },
      ],
    }),
  ],
  performance: { hints: false },
});
