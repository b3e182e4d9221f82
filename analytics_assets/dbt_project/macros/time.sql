{#- Time, behind adapter.dispatch. Split sends epoch milliseconds; models expose
    `timestamp with time zone` columns named `*_at`. -#}

{% macro epoch_ms_to_timestamp(expression) -%}
  {{ return(adapter.dispatch('epoch_ms_to_timestamp', 'analytics_assets')(expression)) }}
{%- endmacro %}
{% macro default__epoch_ms_to_timestamp(expression) -%}
  to_timestamp({{ expression }} / 1000.0)
{%- endmacro %}
{% macro bigquery__epoch_ms_to_timestamp(expression) -%}
  timestamp_millis({{ expression }})
{%- endmacro %}
{% macro snowflake__epoch_ms_to_timestamp(expression) -%}
  to_timestamp_tz({{ expression }}, 3)
{%- endmacro %}

{% macro type_timestamptz() -%}
  {{ return(adapter.dispatch('type_timestamptz', 'analytics_assets')()) }}
{%- endmacro %}
{% macro default__type_timestamptz() -%}timestamp with time zone{%- endmacro %}
{% macro bigquery__type_timestamptz() -%}timestamp{%- endmacro %}
{% macro snowflake__type_timestamptz() -%}timestamp_tz{%- endmacro %}

{#- "Now" of a run: the var `as_of` (ISO-8601), or the run's start. -#}
{% macro as_of() -%}
  {%- set value = var('as_of', env_var('ANALYTICS_AS_OF', '')) -%}
  {%- if not value -%}{%- set value = run_started_at.isoformat() -%}{%- endif -%}
  cast('{{ value }}' as {{ type_timestamptz() }})
{%- endmacro %}

{#- Whole days from `start` to `end` (floor), null when either is null. -#}
{% macro days_between(start, end) -%}
  {{ return(adapter.dispatch('days_between', 'analytics_assets')(start, end)) }}
{%- endmacro %}
{% macro default__days_between(start, end) -%}
  cast(floor(extract(epoch from ({{ end }} - {{ start }})) / 86400) as bigint)
{%- endmacro %}
{% macro bigquery__days_between(start, end) -%}
  div(timestamp_diff({{ end }}, {{ start }}, second), 86400)
{%- endmacro %}
{% macro snowflake__days_between(start, end) -%}
  floor(datediff(second, {{ start }}, {{ end }}) / 86400)
{%- endmacro %}

{#- Hours from `start` to `end`, fractional, null when either is null. -#}
{% macro hours_between(start, end) -%}
  {{ return(adapter.dispatch('hours_between', 'analytics_assets')(start, end)) }}
{%- endmacro %}
{% macro default__hours_between(start, end) -%}
  cast(extract(epoch from ({{ end }} - {{ start }})) / 3600.0 as {{ dbt.type_float() }})
{%- endmacro %}
{% macro bigquery__hours_between(start, end) -%}
  timestamp_diff({{ end }}, {{ start }}, second) / 3600.0
{%- endmacro %}
{% macro snowflake__hours_between(start, end) -%}
  datediff(second, {{ start }}, {{ end }}) / 3600.0
{%- endmacro %}
