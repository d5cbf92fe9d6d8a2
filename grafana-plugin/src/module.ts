import { DataSourcePlugin } from '@grafana/data';

import { ConfigEditor } from './components/ConfigEditor';
import { QueryEditor } from './components/QueryEditor';
import { DataSource } from './datasource';
import { PIOptions, PIQuery, PISecureJsonData } from './types';

export const plugin = new DataSourcePlugin<DataSource, PIQuery, PIOptions, PISecureJsonData>(DataSource)
  .setConfigEditor(ConfigEditor)
  .setQueryEditor(QueryEditor);
