import pluginJson from './plugin.json';
import { plugin } from './module';
import { ConfigEditor } from './components/ConfigEditor';
import { QueryEditor } from './components/QueryEditor';
import { DataSource } from './datasource';

describe('plugin.json', () => {
  it('has the id, name and type Grafana loads it by', () => {
    expect(pluginJson.id).toBe('postfixinsights-messages-datasource');
    expect(pluginJson.id).toMatch(/^[0-9a-z]+-([0-9a-z]+-)?(app|panel|datasource)$/);
    expect(pluginJson.name).toBe('Postfix Insights');
    expect(pluginJson.type).toBe('datasource');
    expect(pluginJson.annotations).toBe(true);
  });

  it('routes /api through the data proxy with the URL from jsonData and the token from secureJsonData', () => {
    expect(pluginJson.routes).toEqual([
      {
        path: 'api',
        url: '{{ .JsonData.url }}',
        headers: [{ name: 'Authorization', content: 'Bearer {{ .SecureJsonData.token }}' }],
      },
    ]);
  });

  it('keeps the version placeholder for the build to fill in', () => {
    expect(pluginJson.info.version).toBe('%VERSION%');
    expect(pluginJson.info.logos.small).toBe('img/logo.svg');
  });
});

describe('module', () => {
  it('exports the plugin with the data source and both editors', () => {
    expect(plugin.DataSourceClass).toBe(DataSource);
    expect(plugin.components.ConfigEditor).toBe(ConfigEditor);
    expect(plugin.components.QueryEditor).toBe(QueryEditor);
  });
});
