import React from 'react';
import { DataSourcePluginOptionsEditorProps } from '@grafana/data';
import { InlineField, Input, SecretInput } from '@grafana/ui';

import { PIOptions, PISecureJsonData } from '../types';

type Props = DataSourcePluginOptionsEditorProps<PIOptions, PISecureJsonData>;

const LABEL_WIDTH = 16;

/** URL goes to jsonData (the proxy route reads it); the token only ever to secureJsonData. */
export function ConfigEditor({ options, onOptionsChange }: Props) {
  const tokenConfigured = Boolean(options.secureJsonFields?.token);

  return (
    <>
      <InlineField
        label="URL"
        labelWidth={LABEL_WIDTH}
        htmlFor="pi-config-url"
        tooltip="Where Grafana's server reaches `postfix-insights serve`, e.g. http://127.0.0.1:8080"
      >
        <Input
          id="pi-config-url"
          width={40}
          placeholder="http://127.0.0.1:8080"
          value={options.jsonData.url ?? ''}
          onChange={(e) =>
            onOptionsChange({ ...options, jsonData: { ...options.jsonData, url: e.currentTarget.value.trim() } })
          }
        />
      </InlineField>
      <InlineField
        label="API token"
        labelWidth={LABEL_WIDTH}
        htmlFor="pi-config-token"
        tooltip="One of the tokens in [api] tokens; leave empty when the API has none"
      >
        <SecretInput
          id="pi-config-token"
          width={40}
          placeholder="token"
          isConfigured={tokenConfigured}
          value={options.secureJsonData?.token ?? ''}
          onChange={(e) =>
            onOptionsChange({ ...options, secureJsonData: { ...options.secureJsonData, token: e.currentTarget.value } })
          }
          onReset={() =>
            onOptionsChange({
              ...options,
              secureJsonFields: { ...options.secureJsonFields, token: false },
              secureJsonData: { ...options.secureJsonData, token: '' },
            })
          }
        />
      </InlineField>
    </>
  );
}
